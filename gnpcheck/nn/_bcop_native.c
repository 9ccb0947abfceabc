/* The BCOP kernel's build from a layer's parameters and its backward, each in one native
 * call; the block-convolution stages, the QR gradients and circular padding alone (docs/
 * layers.rst, Note [native stages]).
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
 * The factors are those of gnpcheck.nn.qr_kernel: the float64 QR of each parameter matrix,
 * H's with diag(T) > 0, and P = Q Q^T.
 *
 * Arithmetic: where the processor has AVX-512F (gnp_own_products), products run on this
 * file's kernel (12 x 32 float32 or 12 x 16 float64 tiles of C held in registers, A
 * broadcast, B loaded by rows, masked at the edges, the depth summed in blocks of 128),
 * triangular solves on a blocked solve over it, and the QR is Cholesky QR (Householder where
 * that fails); elsewhere, and for what the kernel does not do, the BLAS and LAPACK PyTorch
 * uses, whose routines the caller hands over (gnp_set_blas): the BLAS PyTorch ships may
 * choose code for another processor than the one it runs on. Integer arguments reach them
 * as pointers to 64-bit integers, which an LP64 library reads as their low 32 bits on a
 * little-endian machine and an ILP64 one whole (an integer it writes back, LAPACK's info,
 * starts at 0, so its low half alone tells success).
 *
 * Threads: the caller hands over its OpenMP runtime's GOMP_parallel, omp_get_thread_num and
 * omp_get_num_threads (gnp_set_threads; those of PyTorch's own runtime), so that the work is
 * shared by the team PyTorch's operations use, not by a second pool competing for the same
 * cores. Independent items (the QR factorizations, a batch of QR gradients) are spread over
 * the team, each computed whole by one thread (an OpenMP BLAS runs on one thread inside a
 * parallel region); products have their rows of tiles spread over it, copies their planes or
 * output channels. No result depends on the number of threads. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define GNP_HAVE_AVX512_KERNEL 1
#endif

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

typedef void (*parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
typedef int (*team_fn)(void);
static parallel_fn omp_parallel = 0;
static team_fn omp_thread_num = 0, omp_num_threads = 0;
static int own_products = 0;

int gnp_abi_version(void) { return 7; }

void gnp_set_blas(void *sgemm_address, void *dgemm_address, void *strsm_address,
                  void *dtrsm_address, void *dgeqrf_address, void *dorgqr_address) {
    sgemm = (gemm_fn)sgemm_address;
    dgemm = (gemm_fn)dgemm_address;
    strsm = (trsm_fn)strsm_address;
    dtrsm = (trsm_fn)dtrsm_address;
    dgeqrf = (geqrf_fn)dgeqrf_address;
    dorgqr = (orgqr_fn)dorgqr_address;
}

/* The OpenMP runtime's entry points, or null pointers: everything then runs on one thread. */
void gnp_set_threads(void *parallel_address, void *thread_num_address,
                     void *num_threads_address) {
    const int all = parallel_address && thread_num_address && num_threads_address;
    omp_parallel = all ? (parallel_fn)parallel_address : 0;
    omp_thread_num = all ? (team_fn)thread_num_address : 0;
    omp_num_threads = all ? (team_fn)num_threads_address : 0;
}

/* Whether products, triangular solves and the QR run on this file's kernel (Cholesky QR):
 * asked for (enable != 0) and the processor and operating system support AVX-512F. Returns
 * the setting now in force. */
int gnp_own_products(int enable) {
#ifdef GNP_HAVE_AVX512_KERNEL
    __builtin_cpu_init();
    own_products = enable && __builtin_cpu_supports("avx512f");
#else
    own_products = 0;
    (void)enable;
#endif
    return own_products;
}

/* body(data, thread, threads) on a team of at most `threads` (the runtime's choice), or once
 * on this thread with (0, 1). */
typedef void (*body_fn)(void *, int64_t, int64_t);
typedef struct {
    body_fn body;
    void *data;
} team_job;

static void team_entry(void *job) {
    const team_job *j = job;
    j->body(j->data, omp_thread_num(), omp_num_threads());
}

static void in_parallel(body_fn body, void *data, int64_t threads) {
    if (omp_parallel && threads > 1) {
        team_job job = {body, data};
        omp_parallel(team_entry, &job, (unsigned)threads, 0);
    } else {
        body(data, 0, 1);
    }
}

/* The first of `count` items that `thread` of `threads` takes (it stops at the next thread's
 * first): contiguous shares, their sizes differing by one at most. */
static int64_t share(int64_t count, int64_t thread, int64_t threads) {
    return count * thread / threads;
}

/* item(data, i, thread) for each i in [first, last], taken in turn by the team's threads
 * (the costliest first, where the caller orders them so): each item computed whole by one
 * thread, whichever it is. */
typedef void (*item_fn)(void *, int64_t, int64_t);
typedef struct {
    item_fn item;
    void *data;
    int64_t last;
    atomic_int_fast64_t next;
} items_job;

static void items_body(void *data, int64_t thread, int64_t threads) {
    items_job *j = data;
    (void)threads;
    for (int64_t i = atomic_fetch_add(&j->next, 1); i <= j->last;
         i = atomic_fetch_add(&j->next, 1)) {
        j->item(j->data, i, thread);
    }
}

static void each_item(item_fn item, void *data, int64_t first, int64_t last, int64_t threads) {
    items_job job = {.item = item, .data = data, .last = last};
    atomic_init(&job.next, first);
    in_parallel(items_body, &job, threads);
}

/* Row-major C (m x n) = alpha op(A) B (+ C when accumulate): op(A) = A (m x k, row stride
 * lda) or A^T (A k x m); B (k x n, row stride ldb). */
#define DEFINE_PRODUCT_JOB(T, SUFFIX)                                                              \
    typedef struct {                                                                               \
        int64_t m, n, k, a_row, a_depth, ldb, ldc;                                                 \
        const T *a, *b;                                                                            \
        T *c;                                                                                      \
        T alpha;                                                                                   \
        int accumulate, upper; /* upper: only the tiles that meet C's upper triangle */            \
    } product_job_##SUFFIX;

DEFINE_PRODUCT_JOB(float, f32)
DEFINE_PRODUCT_JOB(double, f64)

#ifdef GNP_HAVE_AVX512_KERNEL
#define TILE_ROWS 12
/* Products sum at most this many terms in registers before adding them to C: longer chains
 * of float32 sums lose accuracy (BCOP's float32 defect at 256 channels rose from 8.2e-7 to
 * 1.2e-6 with one chain over the depth of 256); the BLAS sums in blocks of 128 too. */
#define DEPTH_BLOCK 128
/* A tile of C at rows [0, rows) and columns [0, columns), rows <= 12, columns <= 2 L for L
 * lanes of T (P: ps or pd) per register: 24 accumulators; a row of A past `rows` reads the
 * last valid one (its sums are not stored). */
#define TILE_ROW(r, T, V, P, L)                                                                    \
    V c##r##0 = _mm512_setzero_##P(), c##r##1 = _mm512_setzero_##P();                              \
    const T *a##r = a + (r < rows ? r : rows - 1) * a_row;
#define TILE_FMA(r, T, V, P, L)                                                                    \
    {                                                                                              \
        const V x = _mm512_set1_##P(a##r[depth]);                                                  \
        c##r##0 = _mm512_fmadd_##P(x, b0, c##r##0);                                                \
        c##r##1 = _mm512_fmadd_##P(x, b1, c##r##1);                                                \
    }
#define TILE_STORE(r, T, V, P, L)                                                                  \
    if (r < rows) {                                                                                \
        T *cr = c + r * ldc;                                                                       \
        V v0 = _mm512_mul_##P(c##r##0, scale), v1 = _mm512_mul_##P(c##r##1, scale);                \
        if (accumulate) {                                                                          \
            v0 = _mm512_add_##P(v0, _mm512_maskz_loadu_##P(mask0, cr));                            \
            v1 = _mm512_add_##P(v1, _mm512_maskz_loadu_##P(mask1, cr + L));                        \
        }                                                                                          \
        _mm512_mask_storeu_##P(cr, mask0, v0);                                                     \
        _mm512_mask_storeu_##P(cr + L, mask1, v1);                                                 \
    }
#define TILE_ALL(M, ...)                                                                           \
    M(0, __VA_ARGS__) M(1, __VA_ARGS__) M(2, __VA_ARGS__) M(3, __VA_ARGS__) M(4, __VA_ARGS__)      \
    M(5, __VA_ARGS__) M(6, __VA_ARGS__) M(7, __VA_ARGS__) M(8, __VA_ARGS__) M(9, __VA_ARGS__)      \
    M(10, __VA_ARGS__) M(11, __VA_ARGS__)

#define DEFINE_TILE(T, SUFFIX, V, P, L, MASK)                                                      \
    __attribute__((target("avx512f"))) static void tile_##SUFFIX(                                  \
        int64_t rows, int64_t columns, int64_t k, const T *a, int64_t a_row, int64_t a_depth,      \
        const T *b, int64_t ldb, T *c, int64_t ldc, T alpha, int accumulate) {                     \
        TILE_ALL(TILE_ROW, T, V, P, L)                                                             \
        const MASK full = (MASK)((1u << L) - 1);                                                   \
        const MASK mask0 = columns >= L ? full : (MASK)((1u << columns) - 1);                      \
        const MASK mask1 = columns >= 2 * L ? full                                                 \
                           : columns <= L   ? 0                                                    \
                                            : (MASK)((1u << (columns - L)) - 1);                   \
        for (int64_t p = 0; p < k; p++) {                                                          \
            const T *bp = b + p * ldb;                                                             \
            const int64_t depth = p * a_depth;                                                     \
            const V b0 = _mm512_maskz_loadu_##P(mask0, bp);                                        \
            const V b1 = _mm512_maskz_loadu_##P(mask1, bp + L);                                    \
            TILE_ALL(TILE_FMA, T, V, P, L)                                                         \
        }                                                                                          \
        const V scale = _mm512_set1_##P(alpha);                                                    \
        TILE_ALL(TILE_STORE, T, V, P, L)                                                           \
    }                                                                                              \
                                                                                                   \
    /* the team's share of the tiles: rows of tiles split, every column of tiles (outer loop,      \
       so that B's panel stays in the cache across the rows) */                                    \
    static void product_body_##SUFFIX(void *data, int64_t thread, int64_t threads) {               \
        const product_job_##SUFFIX *j = data;                                                      \
        const int64_t tiles = (j->m + TILE_ROWS - 1) / TILE_ROWS;                                  \
        const int64_t first = share(tiles, thread, threads);                                       \
        const int64_t last = share(tiles, thread + 1, threads);                                    \
        for (int64_t column = 0; column < j->n; column += 2 * L) {                                 \
            const int64_t columns = j->n - column < 2 * L ? j->n - column : 2 * L;                 \
            for (int64_t t = first; t < last; t++) {                                               \
                const int64_t row = t * TILE_ROWS;                                                 \
                if (j->upper && column + columns <= row) continue;                                 \
                const int64_t rows = j->m - row < TILE_ROWS ? j->m - row : TILE_ROWS;              \
                /* the depth in blocks of DEPTH_BLOCK, each summed in registers, then added to C   \
                   (the BLAS's order of summation, and its rounding, at any depth); a depth of     \
                   0 still writes C (alpha times nothing, plus C when accumulating) */             \
                for (int64_t depth = 0; depth == 0 || depth < j->k; depth += DEPTH_BLOCK) {        \
                    const int64_t part = j->k - depth < DEPTH_BLOCK ? j->k - depth : DEPTH_BLOCK;  \
                    tile_##SUFFIX(rows, columns, part, j->a + row * j->a_row + depth * j->a_depth, \
                                  j->a_row, j->a_depth, j->b + depth * j->ldb + column, j->ldb,    \
                                  j->c + row * j->ldc + column, j->ldc, j->alpha,                  \
                                  j->accumulate || depth > 0);                                     \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_TILE(float, f32, __m512, ps, 16, __mmask16)
DEFINE_TILE(double, f64, __m512d, pd, 8, __mmask8)
#endif

/* Whether this file's kernel computes the product (and does): op(B) = B, beta 0 or 1, AVX-512F
 * available and enabled (gnp_own_products); threads only for products of 2^21 flops or more,
 * where the team's start costs less than it saves. */
#ifdef GNP_HAVE_AVX512_KERNEL
#define DEFINE_OWN_GEMM(T, SUFFIX)                                                                 \
    static int own_gemm_##SUFFIX(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,        \
                                 T alpha, const T *a, int64_t lda, const T *b, int64_t ldb,        \
                                 T beta, T *c, int64_t ldc, int64_t threads) {                     \
        if (!own_products || trans_b || (beta != 0 && beta != 1)) return 0;                        \
        const product_job_##SUFFIX job = {                                                         \
            m, n, k, trans_a ? 1 : lda, trans_a ? lda : 1, ldb, ldc, a, b, c, alpha,               \
            beta == 1, 0};                                                                         \
        const int64_t team = 2 * m * n * k >= (1 << 21) ? threads : 1;                             \
        in_parallel(product_body_##SUFFIX, (void *)&job, team);                                    \
        return 1;                                                                                  \
    }
#else
#define DEFINE_OWN_GEMM(T, SUFFIX)                                                                 \
    static int own_gemm_##SUFFIX(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,        \
                                 T alpha, const T *a, int64_t lda, const T *b, int64_t ldb,        \
                                 T beta, T *c, int64_t ldc, int64_t threads) {                     \
        (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)a;             \
        (void)lda, (void)b, (void)ldb, (void)beta, (void)c, (void)ldc, (void)threads;              \
        return 0;                                                                                  \
    }
#endif
DEFINE_OWN_GEMM(float, f32)
DEFINE_OWN_GEMM(double, f64)
#ifdef GNP_HAVE_AVX512_KERNEL
#define AVX512_TARGET __attribute__((target("avx512f")))
#else
#define AVX512_TARGET
#endif

#define DEFINE_PRODUCTS(T, SUFFIX, GEMM, TRSM)                                                     \
    /* row-major C (m x k2) = alpha op(A) op(B) + beta C, on `threads` at most: this file's        \
       kernel where own_gemm takes it, else the BLAS, which is column-major and so computes        \
       C^T = op(B)^T op(A)^T */                                                                    \
    static void gemm_##SUFFIX(int trans_a, int trans_b, int64_t m, int64_t k2, int64_t k,          \
                              T alpha, const T *a, int64_t lda, const T *b, int64_t ldb,           \
                              T beta, T *c, int64_t ldc, int64_t threads) {                        \
        if (own_gemm_##SUFFIX(trans_a, trans_b, m, k2, k, alpha, a, lda, b, ldb, beta, c, ldc,     \
                              threads))                                                            \
            return;                                                                                \
        const char op_a = trans_a ? 'T' : 'N', op_b = trans_b ? 'T' : 'N';                         \
        GEMM(&op_b, &op_a, &k2, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);                 \
    }                                                                                              \
                                                                                                   \
    /* panel (w x n; row c holds column c of a block of X) solved by the w x w diagonal block      \
       d of U (row stride ldu): upper, P_c = (P_c - sum_{i < c} d_ic P_i) / d_cc in order;         \
       lower, the same over i > c in reverse order: contiguous updates */                          \
    AVX512_TARGET static void solve_panel_##SUFFIX(int upper, int64_t n, int64_t w,                \
                                                   const T *d, int64_t ldu, T *panel) {            \
        for (int64_t s = 0; s < w; s++) {                                                          \
            const int64_t c = upper ? s : w - 1 - s;                                               \
            T *restrict pc = panel + c * n;                                                        \
            for (int64_t i = upper ? 0 : c + 1; i < (upper ? c : w); i++) {                        \
                const T factor = d[i * ldu + c];                                                   \
                const T *restrict pi = panel + i * n;                                              \
                for (int64_t r = 0; r < n; r++) pc[r] -= factor * pi[r];                           \
            }                                                                                      \
            const T diagonal = d[c * ldu + c];                                                     \
            for (int64_t r = 0; r < n; r++) pc[r] /= diagonal;                                     \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* row-major X (n x k) <- X U^{-1} for U (k x k, row-major) upper (upper != 0) or lower        \
       triangular, on this file's kernel; returns 0 (nothing done) where it does not run.          \
       Columns in blocks of 32: the solved ones folded into a block by one product, then the       \
       block solved on its transpose. */                                                           \
    static int own_solve_##SUFFIX(int upper, int64_t n, int64_t k, const T *u, T *x,               \
                                  int64_t threads) {                                               \
        const int64_t block = 32;                                                                  \
        T *panel = own_products ? malloc(sizeof(T) * (size_t)(block * n)) : NULL;                  \
        if (panel == NULL) return 0;                                                               \
        for (int64_t step = 0; step < k; step += block) {                                          \
            const int64_t width = k - step < block ? k - step : block;                             \
            const int64_t first = upper ? step : k - step - width, after = first + width;          \
            if (upper && first > 0) {                                                              \
                gemm_##SUFFIX(0, 0, n, width, first, -1, x, k, u + first, k, 1, x + first, k,      \
                              threads);                                                            \
            }                                                                                      \
            if (!upper && after < k) {                                                             \
                gemm_##SUFFIX(0, 0, n, width, k - after, -1, x + after, k, u + after * k + first,  \
                              k, 1, x + first, k, threads);                                        \
            }                                                                                      \
            for (int64_t r = 0; r < n; r++) {                                                      \
                for (int64_t c = 0; c < width; c++) panel[c * n + r] = x[r * k + first + c];       \
            }                                                                                      \
            solve_panel_##SUFFIX(upper, n, width, u + first * k + first, k, panel);                \
            for (int64_t r = 0; r < n; r++) {                                                      \
                for (int64_t c = 0; c < width; c++) x[r * k + first + c] = panel[c * n + r];       \
            }                                                                                      \
        }                                                                                          \
        free(panel);                                                                               \
        return 1;                                                                                  \
    }                                                                                              \
                                                                                                   \
    /* row-major X (n x k) <- X T^{-T} for T (k x k) upper triangular, row-major: on this          \
       file's kernel with T^T copied (lower), else by the BLAS (seen column-major, X^T is          \
       solved by T, whose buffer reads as T^T) */                                                  \
    static void solve_by_transpose_##SUFFIX(int64_t n, int64_t k, const T *t, T *x,                \
                                            int64_t threads) {                                     \
        T *lower = own_products ? malloc(sizeof(T) * (size_t)(k * k)) : NULL;                      \
        if (lower != NULL) {                                                                       \
            for (int64_t i = 0; i < k; i++) {                                                      \
                for (int64_t j = 0; j < k; j++) lower[i * k + j] = t[j * k + i];                   \
            }                                                                                      \
            const int done = own_solve_##SUFFIX(0, n, k, lower, x, threads);                       \
            free(lower);                                                                           \
            if (done) return;                                                                      \
        }                                                                                          \
        const T one = 1;                                                                           \
        TRSM("L", "L", "T", "N", &k, &n, &one, t, &k, x, &k);                                      \
    }

DEFINE_PRODUCTS(float, f32, sgemm, strsm)
DEFINE_PRODUCTS(double, f64, dgemm, dtrsm)

/* In place, g (k x k, row-major, symmetric) becomes T, upper triangular with a positive
 * diagonal, G = T^T T (Cholesky, row by row: contiguous updates). Returns 0 where G is not
 * positive definite to working precision. */
AVX512_TARGET static int cholesky_upper(int64_t k, double *g) {
    for (int64_t j = 0; j < k; j++) {
        double *restrict gj = g + j * k;
        if (!(gj[j] > 0)) return 0;
        const double d = __builtin_sqrt(gj[j]);
        gj[j] = d;
        for (int64_t c = j + 1; c < k; c++) gj[c] /= d;
        for (int64_t i = j + 1; i < k; i++) {
            const double factor = gj[i];
            double *restrict gi = g + i * k;
            for (int64_t c = i; c < k; c++) gi[c] -= factor * gj[c];
        }
        for (int64_t c = 0; c < j; c++) gj[c] = 0;
    }
    return 1;
}

/* The upper triangle of g (k x k) = q^T q for q (n x k, row-major), on this file's kernel
 * (the caller checks that it runs), on this thread. */
static void gram(int64_t n, int64_t k, const double *q, double *g) {
#ifdef GNP_HAVE_AVX512_KERNEL
    const product_job_f64 job = {k, k, n, 1, k, k, k, q, q, g, 1, 0, 1};
    product_body_f64((void *)&job, 0, 1);
#else
    gemm_f64(1, 0, k, k, n, 1, q, k, q, k, 0, g, k, 1);
#endif
}

/* Where the first pass of Cholesky QR leaves max |Q^T Q - I| at most this, it is kept: Q is
 * orthonormal to rounding, as Householder's, and the second pass would change nothing. */
#define ONE_PASS_DEFECT 1e-14

/* Cholesky QR twice, in float64 on this file's kernel, of q (n x k, row-major; A on entry):
 * G = Q^T Q = T^T T, Q <- Q T^{-1}, twice (once where ONE_PASS_DEFECT allows), and
 * t = T_2 T_1, upper triangular with a positive diagonal. Returns 0 (q then unusable) where
 * a factorization fails or the first pass leaves Q further than 0.1 from orthonormal
 * (max |Q^T Q - I|: A too ill-conditioned for the second to restore orthonormality to
 * rounding); else 1. work: 2 k k doubles. */
static int cholesky_qr2(int64_t n, int64_t k, double *q, double *t, double *work) {
    double *first = work, *second = work + k * k;
    gram(n, k, q, first);
    if (!cholesky_upper(k, first) || !own_solve_f64(1, n, k, first, q, 1)) return 0;
    gram(n, k, q, second);
    double defect = 0;
    for (int64_t i = 0; i < k; i++) {
        for (int64_t j = i; j < k; j++) {
            const double error = __builtin_fabs(second[i * k + j] - (i == j));
            defect = error > defect ? error : defect;
        }
    }
    if (defect > 0.1) return 0;
    if (defect <= ONE_PASS_DEFECT) { /* the first pass is orthonormal to rounding already */
        memcpy(t, first, sizeof(double) * (size_t)(k * k));
        return 1;
    }
    if (!cholesky_upper(k, second) || !own_solve_f64(1, n, k, second, q, 1)) return 0;
    gemm_f64(0, 0, k, k, k, 1, second, k, first, k, 0, t, k, 1);
    return 1;
}

/* Element i of a float32 (single != 0) or float64 array, in float64. */
static double entry(const void *a, int single, int64_t i) {
    return single ? (double)((const float *)a)[i] : ((const double *)a)[i];
}

/* Thin QR, in float64, of a row-major n x k matrix (n >= k >= 1) given in float32 (single !=
 * 0) or float64: q (n, k) and upper triangular t (k, k), row-major. By cholesky_qr2 where it
 * runs and succeeds (t's diagonal positive), else by LAPACK's Householder QR (geqrf, orgqr;
 * with positive != 0, rows of t and columns of q negated where diag(t) < 0). The two agree to
 * rounding up to the signs of t's rows and q's columns, which cancel in Q Q^T and in the QR
 * gradients. work: 2 n k + k + lwork doubles (lwork >= k). Returns 0, or LAPACK's info. */
static int64_t qr(const void *a, int single, int64_t n, int64_t k, int positive, double *q,
                  double *t, double *work, int64_t lwork) {
    for (int64_t i = 0; i < n * k; i++) q[i] = entry(a, single, i);
    if (own_products && cholesky_qr2(n, k, q, t, work)) return 0;
    double *column_major = work, *tau = work + n * k, *scratch = tau + k;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < k; j++) {
            column_major[j * n + i] = entry(a, single, i * k + j);
        }
    }
    int64_t info = 0;
    dgeqrf(&n, &k, column_major, &n, tau, scratch, &lwork, &info);
    if (info != 0) return info;
    for (int64_t i = 0; i < k; i++) {
        for (int64_t j = 0; j < k; j++) t[i * k + j] = j >= i ? column_major[j * n + i] : 0.0;
    }
    dorgqr(&n, &k, &k, column_major, &n, tau, scratch, &lwork, &info);
    if (info != 0) return info;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < k; j++) q[i * k + j] = column_major[j * n + i];
    }
    for (int64_t j = 0; positive && j < k; j++) {
        if (t[j * k + j] < 0) {
            for (int64_t i = 0; i < n; i++) q[i * k + j] = -q[i * k + j];
            for (int64_t c = 0; c < k; c++) t[j * k + c] = -t[j * k + c];
        }
    }
    return 0;
}

/* p (n x n) = q q^T for q (n x m), exactly symmetric: on this file's kernel as the Gram
 * matrix of q^T (copied into scratch, m n doubles), the upper triangle then mirrored; else
 * by the BLAS. */
static void projector(int64_t n, int64_t m, const double *q, double *p, double *scratch) {
    if (!own_products) {
        gemm_f64(0, 1, n, n, m, 1, q, m, q, m, 0, p, n, 1);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        for (int64_t c = 0; c < m; c++) scratch[c * n + i] = q[i * m + c];
    }
    gram(m, n, scratch, p);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t c = 0; c < i; c++) p[i * n + c] = p[c * n + i];
    }
}

typedef struct {
    const void *h_tilde, *r_tilde;
    int single, build_single;
    int64_t n, m, lwork, slot;
    double *h_q, *h_t, *r_q, *r_t, *work;
    void *projectors;
    atomic_int_fast64_t info;
} factors_job;

/* Item 0 is H's QR, item b + 1 the QR of r_tilde[b] and its projector; one work slot per
 * thread. */
static void factor_item(void *data, int64_t item, int64_t thread) {
    factors_job *j = data;
    const int64_t n = j->n, m = j->m;
    double *work = j->work + thread * j->slot;
    int64_t info;
    if (item == 0) {
        info = qr(j->h_tilde, j->single, n, n, 1, j->h_q, j->h_t, work, j->lwork);
    } else {
        const int64_t b = item - 1;
        const size_t element = j->single ? sizeof(float) : sizeof(double);
        const void *source = (const char *)j->r_tilde + (size_t)(b * n * m) * element;
        double *qb = j->r_q + b * n * m;
        info = qr(source, j->single, n, m, 0, qb, j->r_t + b * m * m, work, j->lwork);
        if (info == 0) {
            double *target = j->build_single ? work : (double *)j->projectors + b * n * n;
            projector(n, m, qb, target, work + n * n);
            float *out = (float *)j->projectors + b * n * n;
            for (int64_t i = 0; j->build_single && i < n * n; i++) out[i] = (float)work[i];
        }
    }
    if (info != 0) atomic_store(&j->info, info);
}

/* The kernel's factors from a layer's parameters (float32 when single != 0, else float64):
 * h_q, h_t (n x n) of h_tilde with diag(h_t) > 0; r_q (count, n, m), r_t (count, m, m) of
 * r_tilde (qr's signs, which cancel in the projectors); the projectors r_q r_q^T
 * (count, n, n), products in float64, written in float32 when build_single != 0; H first,
 * the costliest. work: `threads` slots of 2 n n + n + lwork doubles (lwork >= n). Returns 0,
 * or LAPACK's info (of one factorization that failed). */
static int64_t bcop_factors(const void *h_tilde, const void *r_tilde, int single, int64_t n,
                            int64_t count, int64_t m, int build_single, double *h_q,
                            double *h_t, double *r_q, double *r_t, void *projectors,
                            void *work, int64_t lwork, int64_t threads) {
    factors_job job = {.h_tilde = h_tilde, .r_tilde = r_tilde, .single = single,
                       .build_single = build_single, .n = n, .m = m, .lwork = lwork,
                       .slot = 2 * n * n + n + lwork, .h_q = h_q, .h_t = h_t, .r_q = r_q,
                       .r_t = r_t, .work = work, .projectors = projectors};
    atomic_init(&job.info, 0);
    each_item(factor_item, &job, 0, count, threads);
    return (int64_t)atomic_load(&job.info);
}

/* Bytes of work gnp_kernel_forward_T and gnp_kernel_backward_T need, T of `element` bytes, for
 * a kernel of a x b taps, o x n each, count projectors of rank m and LAPACK's lwork. */
int64_t gnp_kernel_work(int64_t element, int64_t n, int64_t m, int64_t count, int64_t o,
                        int64_t a, int64_t b, int64_t lwork, int64_t threads) {
    const int64_t taps = a * b * o * n;
    const int64_t factors = threads * (2 * n * n + n + lwork) * (int64_t)sizeof(double);
    const int64_t forward = 2 * taps * element;
    const int64_t qr = 3 * n * n + 2 * count * n * m + count * m * m + threads * 2 * n * n;
    const int64_t stages = taps + n * n;
    const int64_t backward = (taps + n * n + count * n * n + (qr > stages ? qr : stages)) * element;
    const int64_t most = factors > forward ? factors : forward;
    return most > backward ? most : backward;
}

/* The grid of taps (a, b) that `stages` stages along `axis` (0: a grows, 1: b grows) build
 * from one tap. */
static void grid_of(int64_t stages, const int64_t *axis, int64_t *a, int64_t *b) {
    *a = 1;
    *b = 1;
    for (int64_t s = 0; s < stages; s++) {
        if (axis[s] == 0) ++*a; else ++*b;
    }
}

#define DEFINE_ROUTINES(T, SUFFIX)                                                                 \
    /* Abar = [Qbar + Q (tril(B - B^T, -1) - B)] T^{-T},  B = Q^T Qbar; work: 2 k k */             \
    static void orthonormal_qr_item_##SUFFIX(const T *q, const T *t, const T *grad, int64_t n,     \
                                             int64_t k, T *out, T *work, int64_t threads) {        \
        T *b = work, *c = work + k * k;                                                            \
        gemm_##SUFFIX(1, 0, k, k, n, 1, q, k, grad, k, 0, b, k, threads);                          \
        for (int64_t i = 0; i < k; i++) {                                                          \
            for (int64_t j = 0; j < k; j++) {                                                      \
                const T lower = j < i ? b[i * k + j] - b[j * k + i] : 0;                           \
                c[i * k + j] = lower - b[i * k + j];                                               \
            }                                                                                      \
        }                                                                                          \
        memcpy(out, grad, sizeof(T) * (size_t)(n * k));                                            \
        gemm_##SUFFIX(0, 0, n, k, k, 1, q, k, c, k, 1, out, k, threads);                           \
        solve_by_transpose_##SUFFIX(n, k, t, out, threads);                                        \
    }                                                                                              \
                                                                                                   \
    /* Abar = (I - Q Q^T) (Pbar + Pbar^T) Q T^{-T}; work: n n + k k */                             \
    static void projector_qr_item_##SUFFIX(const T *q, const T *t, const T *grad, int64_t n,       \
                                           int64_t k, T *out, T *work, int64_t threads) {          \
        T *sym = work, *small = work + n * n;                                                      \
        for (int64_t i = 0; i < n; i++) {                                                          \
            for (int64_t j = 0; j < n; j++) sym[i * n + j] = grad[i * n + j] + grad[j * n + i];    \
        }                                                                                          \
        gemm_##SUFFIX(0, 0, n, k, n, 1, sym, n, q, k, 0, out, k, threads);                         \
        gemm_##SUFFIX(1, 0, k, k, n, 1, q, k, out, k, 0, small, k, threads);                       \
        gemm_##SUFFIX(0, 0, n, k, k, -1, q, k, small, k, 1, out, k, threads);                      \
        solve_by_transpose_##SUFFIX(n, k, t, out, threads);                                        \
    }                                                                                              \
                                                                                                   \
    typedef struct {                                                                               \
        const T *q, *t, *grad;                                                                     \
        int64_t n, k, grad_size, work_size;                                                        \
        T *out, *work;                                                                             \
        void (*item)(const T *, const T *, const T *, int64_t, int64_t, T *, T *, int64_t);        \
    } qr_gradients_job_##SUFFIX;                                                                   \
                                                                                                   \
    /* item m of a batch of QR gradients, on this thread alone (its own work slot) */              \
    static void qr_gradient_item_##SUFFIX(void *data, int64_t m, int64_t thread) {                 \
        const qr_gradients_job_##SUFFIX *j = data;                                                 \
        const int64_t n = j->n, k = j->k;                                                          \
        j->item(j->q + m * n * k, j->t + m * k * k, j->grad + m * j->grad_size, n, k,              \
                j->out + m * n * k, j->work + thread * j->work_size, 1);                           \
    }                                                                                              \
                                                                                                   \
    /* a batch of items spread over the team; a single item has the team for its products */       \
    static void qr_gradients_##SUFFIX(qr_gradients_job_##SUFFIX *job, int64_t batch,               \
                                      int64_t threads) {                                           \
        if (batch == 1) {                                                                          \
            job->item(job->q, job->t, job->grad, job->n, job->k, job->out, job->work, threads);    \
        } else {                                                                                   \
            each_item(qr_gradient_item_##SUFFIX, job, 0, batch - 1, threads);                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* work: `threads` slots of 2 k k */                                                           \
    void gnp_orthonormal_qr_gradient_##SUFFIX(const T *q, const T *t, const T *grad,               \
                                              int64_t batch, int64_t n, int64_t k, T *out,         \
                                              T *work, int64_t threads) {                          \
        qr_gradients_job_##SUFFIX job = {q, t, grad, n, k, n * k, 2 * k * k, out, work,            \
                                         orthonormal_qr_item_##SUFFIX};                            \
        qr_gradients_##SUFFIX(&job, batch, threads);                                               \
    }                                                                                              \
                                                                                                   \
    /* work: `threads` slots of n n + k k */                                                       \
    void gnp_projector_qr_gradient_##SUFFIX(const T *q, const T *t, const T *grad,                 \
                                            int64_t batch, int64_t n, int64_t k, T *out,           \
                                            T *work, int64_t threads) {                            \
        qr_gradients_job_##SUFFIX job = {q, t, grad, n, k, n * n, n * n + k * k, out, work,        \
                                         projector_qr_item_##SUFFIX};                              \
        qr_gradients_##SUFFIX(&job, batch, threads);                                               \
    }                                                                                              \
                                                                                                   \
    /* The stages: outputs[s] receives the output of stage s < stages - 1 and `kernel` that of     \
       the last. work: a b o n of T for the largest grid of taps a stage reads. */                 \
    void gnp_stages_forward_##SUFFIX(const T *h, const T *projectors, int64_t stages,              \
                                     const int64_t *index, const int64_t *axis, int64_t o,         \
                                     int64_t n, T *const *outputs, T *kernel, T *work,             \
                                     int64_t threads) {                                            \
        const int64_t size = o * n;                                                                \
        int64_t a = 1, b = 1;                                                                      \
        const T *x = h;                                                                            \
        for (int64_t s = 0; s < stages; s++) {                                                     \
            const T *p = projectors + index[s] * n * n;                                            \
            gemm_##SUFFIX(0, 0, a * b * o, n, n, 1, x, n, p, n, 0, work, n, threads);              \
            const int64_t rows = axis[s] == 0 ? a + 1 : a, cols = axis[s] == 1 ? b + 1 : b;        \
            T *out = s < stages - 1 ? outputs[s] : kernel;                                         \
            for (int64_t i = 0; i < rows; i++) {                                                   \
                for (int64_t j = 0; j < cols; j++) {                                               \
                    T *target = out + (i * cols + j) * size;                                       \
                    const int64_t pi = axis[s] == 0 ? i - 1 : i, pj = axis[s] == 1 ? j - 1 : j;    \
                    const int has_d = i < a && j < b, has_e = pi >= 0 && pj >= 0;                  \
                    if (!has_e) { /* the first tap along the axis: D alone */                      \
                        memcpy(target, work + (i * b + j) * size, sizeof(T) * (size_t)size);       \
                        continue;                                                                  \
                    }                                                                              \
                    const T *xe = x + (pi * b + pj) * size, *de = work + (pi * b + pj) * size;     \
                    if (has_d) {                                                                   \
                        const T *d = work + (i * b + j) * size;                                    \
                        for (int64_t k = 0; k < size; k++) target[k] = (xe[k] - de[k]) + d[k];     \
                    } else { /* the last tap along the axis: E alone */                            \
                        for (int64_t k = 0; k < size; k++) target[k] = xe[k] - de[k];              \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            x = out;                                                                               \
            a = rows;                                                                              \
            b = cols;                                                                              \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* The stages' backward given g, the gradient of the kernel's taps (a b o n, overwritten).     \
       work: a b o n + n n of T. */                                                                \
    static void stages_backward_##SUFFIX(const T *projectors, int64_t stages,                      \
                                         const int64_t *index, const int64_t *axis, int64_t o,     \
                                         int64_t n, const T *const *inputs, T *g, T *grad_h,       \
                                         T *grad_projectors, T *work, int64_t threads) {           \
        const int64_t size = o * n;                                                                \
        int64_t a, b;                                                                              \
        grid_of(stages, axis, &a, &b);                                                             \
        T *delta = work, *transposed = delta + a * b * size;                                       \
        for (int64_t s = stages - 1; s >= 0; s--) {                                                \
            const int64_t cols = b;                                                                \
            if (axis[s] == 0) a--; else b--;                                                       \
            for (int64_t i = 0; i < a; i++) {                                                      \
                for (int64_t j = 0; j < b; j++) {                                                  \
                    const T *now = g + (i * cols + j) * size;                                      \
                    const T *later = g + ((axis[s] == 0 ? i + 1 : i) * cols                        \
                                          + (axis[s] == 1 ? j + 1 : j)) * size;                    \
                    T *dd = delta + (i * b + j) * size;                                            \
                    for (int64_t k = 0; k < size; k++) dd[k] = now[k] - later[k];                  \
                }                                                                                  \
            }                                                                                      \
            gemm_##SUFFIX(1, 0, n, n, a * b * o, 1, inputs[s], n, delta, n, 0,                     \
                          grad_projectors + index[s] * n * n, n, threads);                         \
            /* the input's gradient starts as `later`, compacted in place (each tap moves to       \
               an earlier or the same position), then gains Delta P^T (P^T copied, so that         \
               the product reads B by rows) */                                                     \
            T *next = s > 0 ? g : grad_h;                                                          \
            for (int64_t i = 0; i < a; i++) {                                                      \
                for (int64_t j = 0; j < b; j++) {                                                  \
                    const T *later = g + ((axis[s] == 0 ? i + 1 : i) * cols                        \
                                          + (axis[s] == 1 ? j + 1 : j)) * size;                    \
                    memmove(next + (i * b + j) * size, later, sizeof(T) * (size_t)size);           \
                }                                                                                  \
            }                                                                                      \
            const T *p = projectors + index[s] * n * n;                                            \
            for (int64_t i = 0; i < n; i++) {                                                      \
                for (int64_t j = 0; j < n; j++) transposed[i * n + j] = p[j * n + i];              \
            }                                                                                      \
            gemm_##SUFFIX(0, 0, a * b * o, n, n, 1, delta, n, transposed, n, 1, next, n,           \
                          threads);                                                                \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* work: 2 a b o n + n n of T for the kernel's grid of taps a x b */                           \
    void gnp_stages_backward_##SUFFIX(const T *projectors, int64_t stages,                         \
                                      const int64_t *index, const int64_t *axis, int64_t o,        \
                                      int64_t n, const T *const *inputs, const T *grad,            \
                                      T *grad_h, T *grad_projectors, T *work,                      \
                                      int64_t threads) {                                           \
        int64_t a, b;                                                                              \
        grid_of(stages, axis, &a, &b);                                                             \
        const int64_t taps = a * b;                                                                \
        memcpy(work, grad, sizeof(T) * (size_t)(taps * o * n));                                    \
        stages_backward_##SUFFIX(projectors, stages, index, axis, o, n, inputs, work, grad_h,      \
                                 grad_projectors, work + taps * o * n, threads);                   \
    }                                                                                              \
                                                                                                   \
    typedef struct {                                                                               \
        T *taps;                                                                                   \
        void *kernel;                                                                              \
        int single;                                                                                \
        int64_t o, n, in_channels, count, to_kernel;                                               \
    } layout_job_##SUFFIX;                                                                         \
                                                                                                   \
    /* the team's share of the output channels: taps first (count, o, n) to PyTorch's layout       \
       (o, in_channels, count), float32 when `single`, or back (to_kernel = 0), the inputs         \
       past in_channels zero */                                                                    \
    static void layout_body_##SUFFIX(void *data, int64_t thread, int64_t threads) {                \
        const layout_job_##SUFFIX *j = data;                                                       \
        const int64_t n = j->n, in = j->in_channels, count = j->count;                             \
        const int64_t last = share(j->o, thread + 1, threads);                                     \
        for (int64_t oo = share(j->o, thread, threads); oo < last; oo++) {                         \
            for (int64_t tap = 0; tap < count; tap++) {                                            \
                T *row = j->taps + (tap * j->o + oo) * n;                                          \
                for (int64_t i = 0; i < in; i++) {                                                 \
                    const int64_t at = (oo * in + i) * count + tap;                                \
                    if (j->to_kernel && j->single) ((float *)j->kernel)[at] = (float)row[i];       \
                    else if (j->to_kernel) ((double *)j->kernel)[at] = (double)row[i];             \
                    else if (j->single) row[i] = (T)((const float *)j->kernel)[at];                \
                    else row[i] = (T)((const double *)j->kernel)[at];                              \
                }                                                                                  \
                for (int64_t i = in; !j->to_kernel && i < n; i++) row[i] = 0;                      \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* The kernel from a layer's parameters: the factors (bcop_factors), h = the first o rows      \
       of H in T (into inputs[0]), the stages (stage s < stages - 1 into inputs[s + 1]), then      \
       the kernel in PyTorch's layout (o, in_channels, a, b), a = 1 in 1-D, written in float32     \
       when kernel_single != 0. work: gnp_kernel_work bytes. Returns 0, or LAPACK's info. */       \
    int64_t gnp_kernel_forward_##SUFFIX(                                                           \
        const void *h_tilde, const void *r_tilde, int single, int64_t n, int64_t count,            \
        int64_t m, const int64_t *index, const int64_t *axis, int64_t o, int64_t in_channels,      \
        double *h_q, double *h_t, double *r_q, double *r_t, T *projectors, T *const *inputs,       \
        void *kernel, int kernel_single, void *work, int64_t lwork, int64_t threads) {             \
        const int64_t stages = count; /* a projector per stage */                                  \
        const int64_t info = bcop_factors(h_tilde, r_tilde, single, n, count, m,                   \
                                          sizeof(T) == sizeof(float), h_q, h_t, r_q, r_t,          \
                                          projectors, work, lwork, threads);                       \
        if (info != 0) return info;                                                                \
        for (int64_t i = 0; i < o * n; i++) inputs[0][i] = (T)h_q[i];                              \
        int64_t a, b;                                                                              \
        grid_of(stages, axis, &a, &b);                                                             \
        T *taps = work, *scratch = taps + a * b * o * n;                                           \
        gnp_stages_forward_##SUFFIX(inputs[0], projectors, stages, index, axis, o, n, inputs + 1,  \
                                    taps, scratch, threads);                                       \
        layout_job_##SUFFIX job = {taps, kernel, kernel_single, o, n, in_channels, a * b, 1};      \
        in_parallel(layout_body_##SUFFIX, &job, a * b * o * n >= (1 << 16) ? threads : 1);         \
        return 0;                                                                                  \
    }                                                                                              \
                                                                                                   \
    typedef struct {                                                                               \
        const T *h_q, *h_t, *grad_h, *r_q, *r_t, *grad_projectors;                                 \
        T *out_h, *out_r, *work;                                                                   \
        int64_t n, m, slot;                                                                        \
    } kernel_qr_job_##SUFFIX;                                                                      \
                                                                                                   \
    /* item 0 is H's QR gradient, b + 1 that of r_tilde[b]'s projector, on this thread alone       \
       (its own work slot) */                                                                      \
    static void kernel_qr_item_##SUFFIX(void *data, int64_t item, int64_t thread) {                \
        const kernel_qr_job_##SUFFIX *j = data;                                                    \
        const int64_t n = j->n, m = j->m;                                                          \
        T *work = j->work + thread * j->slot;                                                      \
        if (item == 0) {                                                                           \
            orthonormal_qr_item_##SUFFIX(j->h_q, j->h_t, j->grad_h, n, n, j->out_h, work, 1);      \
        } else {                                                                                   \
            const int64_t b = item - 1;                                                            \
            projector_qr_item_##SUFFIX(j->r_q + b * n * m, j->r_t + b * m * m,                     \
                                       j->grad_projectors + b * n * n, n, m,                       \
                                       j->out_r + b * n * m, work, 1);                             \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* The parameters' gradients given the kernel's (PyTorch's layout, float32 when                \
       kernel_single != 0) and what gnp_kernel_forward_T saved: the stages' backward, then the     \
       QR gradients of H (its gradient zero past row o) and of each projector, in T, written       \
       in float32 when param_single != 0 into grad_h_tilde and grad_r_tilde (either null: not      \
       wanted). work: gnp_kernel_work bytes. */                                                    \
    void gnp_kernel_backward_##SUFFIX(                                                             \
        const void *grad_kernel, int kernel_single, int64_t n, int64_t count, int64_t m,           \
        const int64_t *index, const int64_t *axis, int64_t o, int64_t in_channels,                 \
        const double *h_q, const double *h_t, const double *r_q, const double *r_t,                \
        const T *projectors, const T *const *inputs, void *grad_h_tilde, void *grad_r_tilde,       \
        int param_single, void *work, int64_t threads) {                                           \
        const int64_t stages = count; /* a projector per stage */                                  \
        int64_t a, b;                                                                              \
        grid_of(stages, axis, &a, &b);                                                             \
        const int64_t taps = a * b;                                                                \
        T *g = work, *grad_h = g + taps * o * n, *grad_p = grad_h + n * n;                         \
        T *factors = grad_p + count * n * n, *stage_work = factors;                                \
        layout_job_##SUFFIX layout = {g, (void *)grad_kernel, kernel_single, o, n, in_channels,    \
                                      taps, 0};                                                    \
        in_parallel(layout_body_##SUFFIX, &layout, taps * o * n >= (1 << 16) ? threads : 1);       \
        stages_backward_##SUFFIX(projectors, stages, index, axis, o, n, inputs, g, grad_h,         \
                                 grad_p, stage_work, threads);                                     \
        for (int64_t i = o * n; i < n * n; i++) grad_h[i] = 0;                                     \
        T *hq = factors, *ht = hq + n * n, *rq = ht + n * n, *rt = rq + count * n * m;             \
        T *out_h = rt + count * m * m, *out_r = out_h + n * n, *slots = out_r + count * n * m;     \
        for (int64_t i = 0; grad_h_tilde && i < n * n; i++) hq[i] = (T)h_q[i], ht[i] = (T)h_t[i];  \
        for (int64_t i = 0; grad_r_tilde && i < count * n * m; i++) rq[i] = (T)r_q[i];             \
        for (int64_t i = 0; grad_r_tilde && i < count * m * m; i++) rt[i] = (T)r_t[i];             \
        kernel_qr_job_##SUFFIX job = {hq,    ht,    grad_h, rq, rt, grad_p, out_h,                 \
                                      out_r, slots, n,      m,  2 * n * n};                        \
        each_item(kernel_qr_item_##SUFFIX, &job, grad_h_tilde ? 0 : 1, grad_r_tilde ? count : 0,   \
                  threads);                                                                        \
        const T *outs[2] = {out_h, out_r};                                                         \
        void *targets[2] = {grad_h_tilde, grad_r_tilde};                                           \
        const int64_t sizes[2] = {n * n, count * n * m};                                           \
        for (int w = 0; w < 2; w++) {                                                              \
            for (int64_t i = 0; targets[w] && i < sizes[w]; i++) {                                 \
                if (param_single) ((float *)targets[w])[i] = (float)outs[w][i];                    \
                else ((double *)targets[w])[i] = (double)outs[w][i];                               \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    typedef struct {                                                                               \
        const T *x;                                                                                \
        T *out;                                                                                    \
        int64_t planes, height, width, top, bottom, left, right;                                   \
    } pad_job_##SUFFIX;                                                                            \
                                                                                                   \
    /* the team's share of the planes */                                                           \
    static void pad_body_##SUFFIX(void *data, int64_t thread, int64_t threads) {                   \
        const pad_job_##SUFFIX *j = data;                                                          \
        const int64_t height = j->height, width = j->width, left = j->left, right = j->right;      \
        const int64_t rows = height + j->top + j->bottom, columns = width + left + right;          \
        const int64_t last = share(j->planes, thread + 1, threads);                                \
        for (int64_t plane = share(j->planes, thread, threads); plane < last; plane++) {           \
            const T *x = j->x + plane * height * width;                                            \
            T *out = j->out + plane * rows * columns;                                              \
            for (int64_t r = 0; r < rows; r++) {                                                   \
                int64_t row = r - j->top; /* at most one side away: wrapped once */                \
                row = row < 0 ? row + height : row >= height ? row - height : row;                 \
                const T *restrict source = x + row * width;                                        \
                T *restrict target = out + r * columns;                                            \
                for (int64_t c = 0; c < left; c++) target[c] = source[width - left + c];           \
                for (int64_t c = 0; c < width; c++) target[left + c] = source[c];                  \
                for (int64_t c = 0; c < right; c++) target[left + width + c] = source[c];          \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* Circular padding of `planes` row-major height x width planes by top and bottom rows and     \
       left and right columns (each at most the side it wraps), as F.pad's mode="circular";        \
       planes shared by the team when there are 2^16 values or more to write. */                   \
    void gnp_circular_pad_##SUFFIX(const T *x, int64_t planes, int64_t height, int64_t width,      \
                                   int64_t top, int64_t bottom, int64_t left, int64_t right,       \
                                   T *out, int64_t threads) {                                      \
        const pad_job_##SUFFIX job = {x, out, planes, height, width, top, bottom, left, right};    \
        const int64_t size = planes * (height + top + bottom) * (width + left + right);            \
        in_parallel(pad_body_##SUFFIX, (void *)&job, size >= (1 << 16) ? threads : 1);             \
    }                                                                                              \

DEFINE_ROUTINES(float, f32)
DEFINE_ROUTINES(double, f64)
