/* Fused CPU kernels of tinlab::interlace_frames (see tinlab/ops/interlacing.py).
 *
 * A clip is viewed as rows: x[n][t][r][l], N videos, T frames, R rows per frame, L elements per row.
 * Rows r < G are interlaced (row r = channel group r), rows r >= G are copied:
 *   y[n][t][r] = a0[n][t][r] * x[n][s0[n][t][r]][r] + a1[n][t][r] * x[n][s1[n][t][r]][r]   (r < G)
 *   y[n][t][r] = x[n][t][r]                                                                 (r >= G)
 * One pass over the output; the second tap of frame t is the first tap of frame t + 1, so it is read
 * from cache. The backward pass is parallel over (video, group) chains, which own disjoint rows of
 * grad_x, so the scatter-add of the adjoint needs no atomics.
 */
#include <stdint.h>
#include <string.h>

/* Position of the first source-frame index outside [0, T) in s0 or s1 (count entries each), or -1.
 * The kernels read x at these frames through raw pointers: the caller checks them first. */
int64_t interlace_first_bad_index(const int64_t* s0, const int64_t* s1, int64_t count, int64_t T) {
    for (int64_t k = 0; k < count; ++k)
        if (s0[k] < 0 || s0[k] >= T || s1[k] < 0 || s1[k] >= T) return k;
    return -1;
}

#define DEFINE_KERNELS(T_, SUFFIX)                                                                  \
void interlace_fwd_##SUFFIX(const T_* x, const int64_t* s0, const int64_t* s1, const T_* a0,        \
                            const T_* a1, T_* y, int64_t N, int64_t T, int64_t R, int64_t G,        \
                            int64_t L, int nthreads) {                                              \
    int64_t frames = N * T;                                                                         \
    _Pragma("omp parallel for num_threads(nthreads) schedule(static) collapse(2)")                  \
    for (int64_t f = 0; f < frames; ++f) {                                                          \
        for (int64_t r = 0; r < R; ++r) {                                                           \
            int64_t n = f / T;                                                                      \
            T_* out = y + (f * R + r) * L;                                                          \
            if (r >= G) {                                                                           \
                memcpy(out, x + (f * R + r) * L, (size_t)L * sizeof(T_));                           \
                continue;                                                                           \
            }                                                                                       \
            int64_t k = f * G + r;                                                                  \
            const T_* x0 = x + ((n * T + s0[k]) * R + r) * L;                                       \
            const T_* x1 = x + ((n * T + s1[k]) * R + r) * L;                                       \
            const T_ c0 = a0[k], c1 = a1[k];                                                        \
            _Pragma("omp simd")                                                                     \
            for (int64_t l = 0; l < L; ++l) out[l] = c0 * x0[l] + c1 * x1[l];                       \
        }                                                                                           \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
/* grad_x (full size), grad_a0, grad_a1 (N*T*G) from gy; pass NULL to skip a gradient. */          \
void interlace_bwd_##SUFFIX(const T_* x, const int64_t* s0, const int64_t* s1, const T_* a0,        \
                            const T_* a1, const T_* gy, T_* gx, T_* ga0, T_* ga1, int64_t N,        \
                            int64_t T, int64_t R, int64_t G, int64_t L, int nthreads) {             \
    if (gx) {                                                                                       \
        int64_t frames = N * T;                                                                     \
        _Pragma("omp parallel for num_threads(nthreads) schedule(static) collapse(2)")              \
        for (int64_t f = 0; f < frames; ++f)                                                        \
            for (int64_t r = G; r < R; ++r)                                                         \
                memcpy(gx + (f * R + r) * L, gy + (f * R + r) * L, (size_t)L * sizeof(T_));        \
        _Pragma("omp parallel for num_threads(nthreads) schedule(static) collapse(2)")              \
        for (int64_t n = 0; n < N; ++n) {                                                           \
            for (int64_t r = 0; r < G; ++r) {                                                       \
                for (int64_t t = 0; t < T; ++t)                                                     \
                    memset(gx + ((n * T + t) * R + r) * L, 0, (size_t)L * sizeof(T_));             \
                for (int64_t t = 0; t < T; ++t) {                                                   \
                    int64_t k = (n * T + t) * G + r;                                                \
                    const T_* g = gy + ((n * T + t) * R + r) * L;                                   \
                    T_* d0 = gx + ((n * T + s0[k]) * R + r) * L;                                    \
                    T_* d1 = gx + ((n * T + s1[k]) * R + r) * L;                                    \
                    const T_ c0 = a0[k], c1 = a1[k];                                                \
                    _Pragma("omp simd")                                                             \
                    for (int64_t l = 0; l < L; ++l) d0[l] += c0 * g[l];                             \
                    _Pragma("omp simd")                                                             \
                    for (int64_t l = 0; l < L; ++l) d1[l] += c1 * g[l];                             \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    if (ga0 || ga1) {                                                                               \
        int64_t frames = N * T;                                                                     \
        _Pragma("omp parallel for num_threads(nthreads) schedule(static) collapse(2)")              \
        for (int64_t f = 0; f < frames; ++f) {                                                      \
            for (int64_t r = 0; r < G; ++r) {                                                       \
                int64_t n = f / T, k = f * G + r;                                                   \
                const T_* g = gy + (f * R + r) * L;                                                 \
                const T_* x0 = x + ((n * T + s0[k]) * R + r) * L;                                   \
                const T_* x1 = x + ((n * T + s1[k]) * R + r) * L;                                   \
                double acc0 = 0, acc1 = 0;                                                          \
                _Pragma("omp simd reduction(+:acc0,acc1)")                                          \
                for (int64_t l = 0; l < L; ++l) { acc0 += g[l] * x0[l]; acc1 += g[l] * x1[l]; }     \
                if (ga0) ga0[k] = (T_)acc0;                                                         \
                if (ga1) ga1[k] = (T_)acc1;                                                         \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
}

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)
