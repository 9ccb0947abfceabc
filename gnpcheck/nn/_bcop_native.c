/* The BCOP kernel's factors (the float64 QR factorizations and the projectors), its
 * block-convolution stages and their backward, and the backward of the QR factorizations,
 * each in one native call (docs/layers.rst, Note [native stages]).
 *
 * Layout: a kernel with taps (A, B) is taps first, (A, B, o, n) row-major; a 1-D kernel has
 * A = 1. A stage along axis 0 (A -> A + 1) or 1 (B -> B + 1) with projector P computes
 *     D = X P,   out_j = D_j + (X_{j-1} - D_{j-1})   (a missing tap counts as zero),
 * and its backward, with G the gradient of its output and later_j = G_{j+1},
 *     Delta_j = G_j - G_{j+1},   Xbar_j = later_j + Delta_j P^T,   Pbar = sum_j X_j^T Delta_j.
 * These are the operations of gnpcheck.nn.kernel's stages, in the same order. The QR
 * gradients are those of gnpcheck.nn.orthogonalize: for A = Q T (Q n x k, T k x k upper),
 *     orthonormal:  Abar = [Qbar + Q (tril(B - B^T, -1) - B)] T^{-T},  B = Q^T Qbar,
 *     projector:    Abar = (I - Q Q^T) (Pbar + Pbar^T) Q T^{-T}.
 * The factors are those of gnpcheck.nn.qr_kernel: Householder QR (LAPACK's geqrf and orgqr,
 * as torch.linalg.qr) in float64, H's signs fixed so that diag(T) > 0, P = Q Q^T.
 * Products, triangular solves and factorizations are done by the BLAS and LAPACK PyTorch
 * uses: the caller hands over its routines (gnp_set_blas). Integer arguments reach them as
 * pointers to 64-bit integers, which an LP64 library reads as their low 32 bits on a
 * little-endian machine and an ILP64 one whole (an integer it writes back, LAPACK's info,
 * starts at 0, so its low half alone tells success). */
#include <stdint.h>
#include <string.h>

typedef void (*gemm_fn)(const char *, const char *, const int64_t *, const int64_t *,
                        const int64_t *, const void *, const void *, const int64_t *,
                        const void *, const int64_t *, const void *, void *, const int64_t *);
typedef void (*trsm_fn)(const char *, const char *, const char *, const char *,
                        const int64_t *, const int64_t *, const void *, const void *,
                        const int64_t *, void *, const int64_t *);
typedef void (*geqrf_fn)(const int64_t *, const int64_t *, double *, const int64_t *, double *,
                         double *, const int64_t *, int64_t *);
typedef void (*orgqr_fn)(const int64_t *, const int64_t *, const int64_t *, double *,
                         const int64_t *, const double *, double *, const int64_t *, int64_t *);

static gemm_fn sgemm = 0, dgemm = 0;
static trsm_fn strsm = 0, dtrsm = 0;
static geqrf_fn dgeqrf = 0;
static orgqr_fn dorgqr = 0;

int gnp_abi_version(void) { return 5; }

void gnp_set_blas(void *sgemm_address, void *dgemm_address, void *strsm_address,
                  void *dtrsm_address, void *dgeqrf_address, void *dorgqr_address) {
    sgemm = (gemm_fn)sgemm_address;
    dgemm = (gemm_fn)dgemm_address;
    strsm = (trsm_fn)strsm_address;
    dtrsm = (trsm_fn)dtrsm_address;
    dgeqrf = (geqrf_fn)dgeqrf_address;
    dorgqr = (orgqr_fn)dorgqr_address;
}

/* Thin QR, in float64, of a batch of row-major n x k matrices (n >= k >= 1) given in float32
 * (single != 0) or float64: q (batch, n, k) and upper triangular t (batch, k, k), row-major;
 * with positive != 0, columns of q and rows of t negated where diag(t) < 0.
 * work: n k + k + lwork doubles (lwork >= k). Returns 0, or LAPACK's info. */
static int64_t qr(const void *a, int single, int64_t batch, int64_t n, int64_t k, int positive,
                  double *q, double *t, double *work, int64_t lwork) {
    double *column_major = work, *tau = work + n * k, *scratch = tau + k;
    for (int64_t b = 0; b < batch; b++) {
        const int64_t offset = b * n * k;
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < k; j++) {
                const int64_t at = offset + i * k + j;
                column_major[j * n + i] = single ? (double)((const float *)a)[at]
                                                 : ((const double *)a)[at];
            }
        }
        int64_t info = 0;
        dgeqrf(&n, &k, column_major, &n, tau, scratch, &lwork, &info);
        if (info != 0) return info;
        double *tb = t + b * k * k, *qb = q + offset;
        for (int64_t i = 0; i < k; i++) {
            for (int64_t j = 0; j < k; j++) tb[i * k + j] = j >= i ? column_major[j * n + i] : 0.0;
        }
        dorgqr(&n, &k, &k, column_major, &n, tau, scratch, &lwork, &info);
        if (info != 0) return info;
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < k; j++) qb[i * k + j] = column_major[j * n + i];
        }
        for (int64_t j = 0; positive && j < k; j++) {
            if (tb[j * k + j] < 0) {
                for (int64_t i = 0; i < n; i++) qb[i * k + j] = -qb[i * k + j];
                for (int64_t c = 0; c < k; c++) tb[j * k + c] = -tb[j * k + c];
            }
        }
    }
    return 0;
}

#define DEFINE_ROUTINES(T, SUFFIX, GEMM, TRSM)                                                    \
    /* row-major C (m x k2) = alpha op(A) op(B) + beta C: BLAS is column-major, so it        \
       computes C^T = B^T A^T */                                                              \
    static void gemm_##SUFFIX(int trans_a, int trans_b, int64_t m, int64_t k2, int64_t k,     \
                              T alpha, const T *a, int64_t lda, const T *b, int64_t ldb,      \
                              T beta, T *c, int64_t ldc) {                                     \
        const char op_a = trans_a ? 'T' : 'N', op_b = trans_b ? 'T' : 'N';                     \
        GEMM(&op_b, &op_a, &k2, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);             \
    }                                                                                          \
                                                                                               \
    /* row-major X (n x k) <- X T^{-T} for T (k x k) upper triangular, row-major: seen        \
       column-major, X^T is solved by T, whose buffer reads as T^T (lower) */                 \
    static void solve_by_transpose_##SUFFIX(int64_t n, int64_t k, const T *t, T *x) {          \
        const T one = 1;                                                                       \
        TRSM("L", "L", "T", "N", &k, &n, &one, t, &k, x, &k);                                  \
    }                                                                                          \
                                                                                               \
    void gnp_orthonormal_qr_gradient_##SUFFIX(const T *q, const T *t, const T *grad,           \
                                              int64_t batch, int64_t n, int64_t k, T *out,     \
                                              T *work) {                                       \
        for (int64_t m = 0; m < batch; m++) {                                                  \
            const T *qm = q + m * n * k, *tm = t + m * k * k, *gm = grad + m * n * k;          \
            T *om = out + m * n * k, *b = work, *c = work + k * k;                             \
            gemm_##SUFFIX(1, 0, k, k, n, 1, qm, k, gm, k, 0, b, k);                            \
            for (int64_t i = 0; i < k; i++) {                                                  \
                for (int64_t j = 0; j < k; j++) {                                              \
                    const T lower = j < i ? b[i * k + j] - b[j * k + i] : 0;                   \
                    c[i * k + j] = lower - b[i * k + j];                                       \
                }                                                                              \
            }                                                                                  \
            memcpy(om, gm, sizeof(T) * (size_t)(n * k));                                       \
            gemm_##SUFFIX(0, 0, n, k, k, 1, qm, k, c, k, 1, om, k);                            \
            solve_by_transpose_##SUFFIX(n, k, tm, om);                                         \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void gnp_projector_qr_gradient_##SUFFIX(const T *q, const T *t, const T *grad,             \
                                            int64_t batch, int64_t n, int64_t k, T *out,       \
                                            T *work) {                                         \
        for (int64_t m = 0; m < batch; m++) {                                                  \
            const T *qm = q + m * n * k, *tm = t + m * k * k, *gm = grad + m * n * n;          \
            T *om = out + m * n * k, *sym = work, *small = work + n * n;                       \
            for (int64_t i = 0; i < n; i++) {                                                  \
                for (int64_t j = 0; j < n; j++) sym[i * n + j] = gm[i * n + j] + gm[j * n + i]; \
            }                                                                                  \
            gemm_##SUFFIX(0, 0, n, k, n, 1, sym, n, qm, k, 0, om, k);                          \
            gemm_##SUFFIX(1, 0, k, k, n, 1, qm, k, om, k, 0, small, k);                        \
            gemm_##SUFFIX(0, 0, n, k, k, -1, qm, k, small, k, 1, om, k);                       \
            solve_by_transpose_##SUFFIX(n, k, tm, om);                                         \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void gnp_stages_forward_##SUFFIX(const T *h, const T *projectors, int64_t stages,          \
                                     const int64_t *index, const int64_t *axis, int64_t o,     \
                                     int64_t n, T *const *outputs, T *work) {                  \
        const int64_t size = o * n;                                                            \
        int64_t a = 1, b = 1;                                                                  \
        const T *x = h;                                                                        \
        for (int64_t s = 0; s < stages; s++) {                                                 \
            const T *p = projectors + index[s] * n * n;                                        \
            gemm_##SUFFIX(0, 0, a * b * o, n, n, 1, x, n, p, n, 0, work, n);                      \
            const int64_t rows = axis[s] == 0 ? a + 1 : a, cols = axis[s] == 1 ? b + 1 : b;    \
            T *out = outputs[s];                                                               \
            for (int64_t i = 0; i < rows; i++) {                                               \
                for (int64_t j = 0; j < cols; j++) {                                           \
                    T *target = out + (i * cols + j) * size;                                   \
                    const int64_t pi = axis[s] == 0 ? i - 1 : i, pj = axis[s] == 1 ? j - 1 : j; \
                    const int has_d = i < a && j < b, has_e = pi >= 0 && pj >= 0;             \
                    if (!has_e) { /* the first tap along the axis: D alone */                  \
                        memcpy(target, work + (i * b + j) * size, sizeof(T) * (size_t)size);   \
                        continue;                                                              \
                    }                                                                          \
                    const T *xe = x + (pi * b + pj) * size, *de = work + (pi * b + pj) * size; \
                    if (has_d) {                                                               \
                        const T *d = work + (i * b + j) * size;                                \
                        for (int64_t k = 0; k < size; k++) target[k] = (xe[k] - de[k]) + d[k]; \
                    } else { /* the last tap along the axis: E alone */                        \
                        for (int64_t k = 0; k < size; k++) target[k] = xe[k] - de[k];          \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            x = out;                                                                           \
            a = rows;                                                                          \
            b = cols;                                                                          \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void gnp_stages_backward_##SUFFIX(const T *projectors, int64_t stages,                     \
                                      const int64_t *index, const int64_t *axis, int64_t o,    \
                                      int64_t n, const T *const *inputs, const T *grad,        \
                                      T *grad_h, T *grad_projectors, T *work) {                \
        const int64_t size = o * n;                                                            \
        int64_t a = 1, b = 1;                                                                  \
        for (int64_t s = 0; s < stages; s++) {                                                 \
            if (axis[s] == 0) a++; else b++;                                                   \
        }                                                                                      \
        T *g = work, *delta = work + a * b * size;                                             \
        memcpy(g, grad, sizeof(T) * (size_t)(a * b * size));                                   \
        for (int64_t s = stages - 1; s >= 0; s--) {                                            \
            const int64_t cols = b;                                                            \
            if (axis[s] == 0) a--; else b--;                                                   \
            for (int64_t i = 0; i < a; i++) {                                                  \
                for (int64_t j = 0; j < b; j++) {                                              \
                    const T *now = g + (i * cols + j) * size;                                  \
                    const T *later = g + ((axis[s] == 0 ? i + 1 : i) * cols                    \
                                          + (axis[s] == 1 ? j + 1 : j)) * size;                \
                    T *dd = delta + (i * b + j) * size;                                        \
                    for (int64_t k = 0; k < size; k++) dd[k] = now[k] - later[k];              \
                }                                                                              \
            }                                                                                  \
            gemm_##SUFFIX(1, 0, n, n, a * b * o, 1, inputs[s], n, delta, n, 0,                 \
                          grad_projectors + index[s] * n * n, n);                              \
            /* the input's gradient starts as `later`, compacted in place (each tap moves to  \
               an earlier or the same position), then gains Delta P^T */                     \
            T *next = s > 0 ? g : grad_h;                                                      \
            for (int64_t i = 0; i < a; i++) {                                                  \
                for (int64_t j = 0; j < b; j++) {                                              \
                    const T *later = g + ((axis[s] == 0 ? i + 1 : i) * cols                    \
                                          + (axis[s] == 1 ? j + 1 : j)) * size;                \
                    memmove(next + (i * b + j) * size, later, sizeof(T) * (size_t)size);       \
                }                                                                              \
            }                                                                                  \
            gemm_##SUFFIX(0, 1, a * b * o, n, n, 1, delta, n, projectors + index[s] * n * n,   \
                          n, 1, next, n);                                                      \
        }                                                                                      \
    }

DEFINE_ROUTINES(float, f32, sgemm, strsm)
DEFINE_ROUTINES(double, f64, dgemm, dtrsm)

/* The kernel's factors from a layer's parameters (float32 when single != 0, else float64):
 * h_q, h_t (n x n) of h_tilde with diag(h_t) > 0; r_q (count, n, m), r_t (count, m, m) of
 * r_tilde (Householder's signs, which cancel in the projectors); the projectors r_q r_q^T
 * (count, n, n), products in float64, written in float32 when build_single != 0.
 * work: n n + n + lwork doubles (lwork >= n). Returns 0, or LAPACK's info. */
int64_t gnp_bcop_factors(const void *h_tilde, const void *r_tilde, int single, int64_t n,
                         int64_t count, int64_t m, int build_single, double *h_q, double *h_t,
                         double *r_q, double *r_t, void *projectors, double *work,
                         int64_t lwork) {
    int64_t info = qr(h_tilde, single, 1, n, n, 1, h_q, h_t, work, lwork);
    if (info != 0) return info;
    info = qr(r_tilde, single, count, n, m, 0, r_q, r_t, work, lwork);
    if (info != 0) return info;
    for (int64_t b = 0; b < count; b++) {
        const double *qb = r_q + b * n * m;
        double *target = build_single ? work : (double *)projectors + b * n * n;
        gemm_f64(0, 1, n, n, m, 1, qb, m, qb, m, 0, target, n);
        if (build_single) {
            float *out = (float *)projectors + b * n * n;
            for (int64_t i = 0; i < n * n; i++) out[i] = (float)work[i];
        }
    }
    return 0;
}
