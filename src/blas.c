/*
 * blas.c - the only user of <cblas.h>: GEMM, AXPY and DOT over ctnas_real,
 * and the OpenBLAS thread count.  Owns nothing else; holds no state but
 * the test switch to the reference GEMM.
 */
#include "config.h"
#include "blas.h"

#include <assert.h>
#include <cblas.h>

static int use_reference;

int ctnas_blas_set_reference(int on)
{
    int old = use_reference;
    use_reference = on;
    return old;
}

/* The reference: C = alpha op(A) op(B) + beta C by a triple loop with the
 * sum in double. */
static void gemm_reference(int trans_a, int trans_b, int m, int n, int k,
                           ctnas_real alpha, const ctnas_real *a, int lda,
                           const ctnas_real *b, int ldb, ctnas_real beta,
                           ctnas_real *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int p = 0; p < k; p++) {
                double x = trans_a ? a[(size_t)p * lda + i]
                                   : a[(size_t)i * lda + p];
                double y = trans_b ? b[(size_t)j * ldb + p]
                                   : b[(size_t)p * ldb + j];
                s += x * y;
            }
            ctnas_real *cij = &c[(size_t)i * ldc + j];
            *cij = (ctnas_real)(alpha * s + (beta == 0 ? 0.0 : beta * *cij));
        }
    }
}

void ctnas_gemm(int trans_a, int trans_b, int m, int n, int k,
                ctnas_real alpha, const ctnas_real *a, int lda,
                const ctnas_real *b, int ldb, ctnas_real beta,
                ctnas_real *c, int ldc)
{
    assert(m >= 0 && n >= 0 && k >= 0);
    assert(lda >= (trans_a ? m : k) && ldb >= (trans_b ? k : n));
    assert(ldc >= n);
    if (m == 0 || n == 0)
        return;
    if (k == 0) {
        /* BLAS leaves C * beta; make beta = 0 mean "overwrite". */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] =
                    beta == 0 ? 0 : beta * c[(size_t)i * ldc + j];
        return;
    }
    if (use_reference) {
        gemm_reference(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                       beta, c, ldc);
        return;
    }
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
#ifdef CTNAS_REAL_DOUBLE
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb,
                beta, c, ldc);
#else
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb,
                beta, c, ldc);
#endif
}

void ctnas_axpy(int n, ctnas_real alpha, const ctnas_real *x, ctnas_real *y)
{
    /* Plain loop: n is at most a few hundred here, where a BLAS call
     * costs more than it saves, and the loop vectorises. */
    for (int i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

ctnas_real ctnas_dot(int n, const ctnas_real *x, const ctnas_real *y)
{
    ctnas_real s = 0;
    for (int i = 0; i < n; i++)
        s += x[i] * y[i];
    return s;
}

void ctnas_blas_set_threads(int n)
{
    if (n < 1)
        n = 1;
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(n);
#endif
}

int ctnas_blas_get_threads(void)
{
#ifdef OPENBLAS_VERSION
    return openblas_get_num_threads();
#else
    return 1;
#endif
}

const char *ctnas_blas_name(void)
{
#ifdef OPENBLAS_VERSION
    return openblas_get_config();
#else
    return "cblas";
#endif
}
