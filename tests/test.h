/*
 * test.h - a tiny TAP producer for the C test programs.
 *
 * A test program is a list of functions registered with TEST_RUN(fn); each
 * is one TAP test point ("ok 3 - fn" or "not ok 3 - fn").  Inside a test,
 * ASSERT* macros print both sides on failure, mark the test failed and
 * return from it.  main() ends with "return test_done();", which prints
 * the plan and the "N passed, N failed" line and returns the exit status.
 */
#ifndef CTNAS_TEST_H
#define CTNAS_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_n_run, test_n_failed, test_cur_failed;

#define TEST_FAIL_(...)                                                 \
    do {                                                                \
        printf("# %s:%d: ", __FILE__, __LINE__);                        \
        printf(__VA_ARGS__);                                            \
        printf("\n");                                                   \
        test_cur_failed = 1;                                            \
        return;                                                         \
    } while (0)

#define ASSERT(c)                                                       \
    do {                                                                \
        if (!(c))                                                       \
            TEST_FAIL_("assertion failed: %s", #c);                     \
    } while (0)

#define ASSERT_MSG(c, ...)                                              \
    do {                                                                \
        if (!(c))                                                       \
            TEST_FAIL_(__VA_ARGS__);                                    \
    } while (0)

#define ASSERT_EQ(a, b)                                                 \
    do {                                                                \
        long long a_ = (long long)(a), b_ = (long long)(b);             \
        if (a_ != b_)                                                   \
            TEST_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);       \
    } while (0)

#define ASSERT_STREQ(a, b)                                              \
    do {                                                                \
        const char *a_ = (a), *b_ = (b);                                \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)            \
            TEST_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b,             \
                       a_ ? a_ : "(null)", b_ ? b_ : "(null)");         \
    } while (0)

#define ASSERT_NEAR(a, b, tol)                                          \
    do {                                                                \
        double a_ = (double)(a), b_ = (double)(b);                      \
        if (!(fabs(a_ - b_) <= (tol)))                                  \
            TEST_FAIL_("%s ~ %s: %.10g vs %.10g (tol %g)", #a, #b, a_,  \
                       b_, (double)(tol));                              \
    } while (0)

/* Run one test function as one TAP point. */
#define TEST_RUN(fn)                                                    \
    do {                                                                \
        test_cur_failed = 0;                                            \
        fn();                                                           \
        test_n_run++;                                                   \
        if (test_cur_failed)                                            \
            test_n_failed++;                                            \
        printf("%s %d - %s\n", test_cur_failed ? "not ok" : "ok",       \
               test_n_run, #fn);                                        \
        fflush(stdout);                                                 \
    } while (0)

/* A point that is skipped, with the reason (e.g. data absent). */
#define TEST_SKIP(fn, why)                                              \
    do {                                                                \
        test_n_run++;                                                   \
        printf("ok %d - %s # SKIP %s\n", test_n_run, #fn, why);         \
        fflush(stdout);                                                 \
    } while (0)

static inline int test_done(void)
{
    printf("1..%d\n", test_n_run);
    printf("# %d passed, %d failed\n", test_n_run - test_n_failed,
           test_n_failed);
    return test_n_failed ? 1 : 0;
}

/* Directory of ../shared/data seen from the source tree, or NULL when it
 * is absent (tests that need it then skip, saying so). */
static inline const char *test_shared_data(const char *file, char *buf,
                                           size_t cap)
{
    const char *top = getenv("CTNAS_SHARED_DATA");
    if (top == NULL)
        top = SRCDIR "/../shared/data";
    snprintf(buf, cap, "%s/%s", top, file);
    FILE *f = fopen(buf, "r");
    if (f == NULL)
        return NULL;
    fclose(f);
    return buf;
}

#endif
