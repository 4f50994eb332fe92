/*
 * blas.h - the numeric type of the comparator and the few BLAS calls it
 * needs.  blas.c is the only file that includes <cblas.h>; everything else
 * reaches BLAS through these wrappers, so a test can build the math in
 * double (-DCTNAS_REAL_DOUBLE) and the daemon in float.
 *
 * All matrices are dense and row-major.  Shape mismatches are bugs and are
 * checked with assert, not reported.
 */
#ifndef CTNAS_BLAS_H
#define CTNAS_BLAS_H

#include <stddef.h>

/* The comparator's scalar: float for training and serving (sgemm is twice
 * the speed of dgemm), double when a gradient test defines
 * CTNAS_REAL_DOUBLE.  Files built both ways must never mix the two builds
 * in one program. */
#ifdef CTNAS_REAL_DOUBLE
typedef double ctnas_real;
#define CTNAS_REAL_NAME "double"
#else
typedef float ctnas_real;
#define CTNAS_REAL_NAME "float"
#endif

/* C = alpha * op(A) op(B) + beta * C, row-major, where op(X) is X or X^T
 * as trans_a / trans_b say.  op(A) is m x k, op(B) is k x n, C is m x n;
 * lda, ldb, ldc are the row strides of A, B, C as stored.  beta = 0
 * ignores C's previous contents (NaNs included). */
void ctnas_gemm(int trans_a, int trans_b, int m, int n, int k,
                ctnas_real alpha, const ctnas_real *a, int lda,
                const ctnas_real *b, int ldb, ctnas_real beta,
                ctnas_real *c, int ldc);

/* y += alpha * x over n elements. */
void ctnas_axpy(int n, ctnas_real alpha, const ctnas_real *x, ctnas_real *y);

/* x . y over n elements. */
ctnas_real ctnas_dot(int n, const ctnas_real *x, const ctnas_real *y);

/* Route ctnas_gemm through a plain triple loop instead of BLAS (for tests
 * that compare the two); returns the previous setting.  Not thread-safe:
 * set it before any work starts. */
int ctnas_blas_set_reference(int on);

/* The BLAS library's thread count: set (n >= 1) and get.  The setting is
 * process-wide.  Without OpenBLAS these do nothing and get returns 1. */
void ctnas_blas_set_threads(int n);
int ctnas_blas_get_threads(void);

/* A short description of the BLAS in use ("OpenBLAS 0.3.21 ..."). */
const char *ctnas_blas_name(void);

#endif
