/* The BCOP kernel's block-convolution stages and their backward, in one native call each
 * (docs/layers.rst, Note [native stages]).
 *
 * Layout: a kernel with taps (A, B) is taps first, (A, B, o, n) row-major; a 1-D kernel has
 * A = 1. A stage along axis 0 (A -> A + 1) or 1 (B -> B + 1) with projector P computes
 *     D = X P,   out_j = D_j + (X_{j-1} - D_{j-1})   (a missing tap counts as zero),
 * and its backward, with G the gradient of its output and later_j = G_{j+1},
 *     Delta_j = G_j - G_{j+1},   Xbar_j = later_j + Delta_j P^T,   Pbar = sum_j X_j^T Delta_j.
 * These are the operations of gnpcheck.nn.kernel's stages, in the same order, with the
 * matrix products done by the BLAS PyTorch uses: the caller hands over its sgemm_/dgemm_
 * (gnp_set_blas). Integer arguments reach them as pointers to 64-bit integers, which an
 * LP64 BLAS reads as their low 32 bits on a little-endian machine and an ILP64 one whole. */
#include <stdint.h>
#include <string.h>

typedef void (*gemm_fn)(const char *, const char *, const int64_t *, const int64_t *,
                        const int64_t *, const void *, const void *, const int64_t *,
                        const void *, const int64_t *, const void *, void *, const int64_t *);

static gemm_fn sgemm = 0, dgemm = 0;

int gnp_abi_version(void) { return 1; }

void gnp_set_blas(void *single, void *dbl) {
    sgemm = (gemm_fn)single;
    dgemm = (gemm_fn)dbl;
}

#define DEFINE_STAGES(T, SUFFIX, GEMM)                                                          \
    /* row-major C (m x k2) = op(A) op(B) + beta C: BLAS is column-major, so C^T = B^T A^T */ \
    static void gemm_##SUFFIX(int trans_a, int trans_b, int64_t m, int64_t k2, int64_t k,     \
                              const T *a, int64_t lda, const T *b, int64_t ldb, T beta, T *c,  \
                              int64_t ldc) {                                                   \
        const T one = 1;                                                                       \
        const char op_a = trans_a ? 'T' : 'N', op_b = trans_b ? 'T' : 'N';                     \
        GEMM(&op_b, &op_a, &k2, &m, &k, &one, b, &ldb, a, &lda, &beta, c, &ldc);               \
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
            gemm_##SUFFIX(0, 0, a * b * o, n, n, x, n, p, n, 0, work, n);                      \
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
            gemm_##SUFFIX(1, 0, n, n, a * b * o, inputs[s], n, delta, n, 0,                    \
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
            gemm_##SUFFIX(0, 1, a * b * o, n, n, delta, n, projectors + index[s] * n * n, n,   \
                          1, next, n);                                                         \
        }                                                                                      \
    }

DEFINE_STAGES(float, f32, sgemm)
DEFINE_STAGES(double, f64, dgemm)
