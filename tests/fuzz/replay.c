/*
 * replay.c - run a libFuzzer target's LLVMFuzzerTestOneInput over saved
 * inputs without libFuzzer, for `make check`: link it with one
 * tests/fuzz/fuzz_*.c and libctnas.a.
 *
 *   replay DIR...   one TAP point per directory: every regular file in it
 *                   is one input, run in a child process so a crash or a
 *                   sanitizer report (an abnormal or non-zero exit) fails
 *                   the point and names the file;
 *   replay          the same over SRCDIR/tests/fuzz/regress/FUZZ_TARGET
 *                   (FUZZ_TARGET is defined when compiling, e.g.
 *                   -DFUZZ_TARGET='"fuzz_arch"'), so automake's TESTS,
 *                   which take no arguments, can run it as is.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"
#include "../test.h"

#ifndef FUZZ_TARGET
#error "compile with -DFUZZ_TARGET='\"fuzz_name\"'"
#endif

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read the whole file at path; NULL on error. */
static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    while (buf != NULL) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap)
            break;
        uint8_t *nb = realloc(buf, cap *= 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
        } else {
            buf = nb;
        }
    }
    if (buf != NULL && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = len;
    return buf;
}

/* Run one input in a child: 0 when it returned normally. */
static int run_one(const char *path)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        printf("# fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        size_t size = 0;
        uint8_t *data = slurp(path, &size);
        if (data == NULL) {
            fprintf(stderr, "# cannot read %s\n", path);
            exit(2);
        }
        /* libFuzzer hands the target a buffer of exactly size bytes. */
        uint8_t *copy = malloc(size ? size : 1);
        if (copy == NULL)
            exit(2);
        memcpy(copy, data, size);
        free(data);
        LLVMFuzzerTestOneInput(copy, size);
        free(copy);
        exit(0);  /* exit, not _exit: leak checkers run at exit */
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        printf("# %s: killed by signal %d\n", path, WTERMSIG(status));
    else
        printf("# %s: exit status %d\n", path, WEXITSTATUS(status));
    return -1;
}

/* The names of the directory being replayed.  File scope, so that a
 * child's leak checker sees them reachable (they are the parent's). */
static char **names;
static size_t n_names;

/* One TAP point: every file of dir. */
static void replay_dir(const char *dir)
{
    int failed = 0, n = 0;
    DIR *d = opendir(dir);
    size_t cap = 0;
    names = NULL;
    n_names = 0;
    if (d == NULL) {
        printf("# cannot open %s: %s\n", dir, strerror(errno));
        failed = 1;
    } else {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            if (n_names == cap) {
                cap = cap ? 2 * cap : 64;
                char **nn = realloc(names, cap * sizeof *nn);
                if (nn == NULL)
                    abort();
                names = nn;
            }
            names[n_names] = strdup(e->d_name);
            if (names[n_names] == NULL)
                abort();
            n_names++;
        }
        closedir(d);
        qsort(names, n_names, sizeof *names, cmp_name);
    }
    for (size_t i = 0; i < n_names; i++) {
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        n++;
        if (run_one(path) != 0)
            failed = 1;
    }
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    names = NULL;
    if (n == 0 && !failed) {
        printf("# %s holds no inputs\n", dir);
        failed = 1;
    }
    test_cur_failed = failed;
    test_n_run++;
    if (failed)
        test_n_failed++;
    printf("%s %d - %s: %s (%d inputs)\n", failed ? "not ok" : "ok",
           test_n_run, FUZZ_TARGET, dir, n);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            replay_dir(argv[i]);
    } else {
        replay_dir(SRCDIR "/tests/fuzz/regress/" FUZZ_TARGET);
    }
    return test_done();
}
