// AVX2 + FMA GEMM micro-kernels (compiled with -mavx2 -mfma; chosen at run
// time by gemm.cc only when the CPU supports both).
//
// Register tile: MR = 6 rows x two ymm vectors (16 floats / 8 doubles), 12
// accumulators.  Edge tiles run a kernel instantiated for exactly the rows
// left and one or two vectors, with masked loads / stores for the last
// partial vector.
#if defined(MNN_GEMM_X86)
#include <immintrin.h>

#include "ops/gemm_tile.h"

namespace mnn {
namespace gemmk {
namespace {

constexpr int kMr = 6;

template <typename T> struct Vec;

template <> struct Vec<float> {
    using reg = __m256;
    static constexpr int W = 8;
    static MNN_INLINE reg zero() { return _mm256_setzero_ps(); }
    static MNN_INLINE reg load(const float* p) { return _mm256_load_ps(p); }
    static MNN_INLINE reg set1(const float* p) { return _mm256_broadcast_ss(p); }
    static MNN_INLINE reg set1v(float v) { return _mm256_set1_ps(v); }
    static MNN_INLINE reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
    static MNN_INLINE reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
    static MNN_INLINE __m256i mask(int64_t n) {  // lanes [0, n) set
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static MNN_INLINE reg loadu(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
    static MNN_INLINE void storeu(float* p, __m256i m, reg v) { _mm256_maskstore_ps(p, m, v); }
};

template <> struct Vec<double> {
    using reg = __m256d;
    static constexpr int W = 4;
    static MNN_INLINE reg zero() { return _mm256_setzero_pd(); }
    static MNN_INLINE reg load(const double* p) { return _mm256_load_pd(p); }
    static MNN_INLINE reg set1(const double* p) { return _mm256_broadcast_sd(p); }
    static MNN_INLINE reg set1v(double v) { return _mm256_set1_pd(v); }
    static MNN_INLINE reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
    static MNN_INLINE reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
    static MNN_INLINE __m256i mask(int64_t n) {
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    }
    static MNN_INLINE reg loadu(const double* p, __m256i m) { return _mm256_maskload_pd(p, m); }
    static MNN_INLINE void storeu(double* p, __m256i m, reg v) { _mm256_maskstore_pd(p, m, v); }
};

// C[0:ROWS, 0:NV*W] (the last vector limited by `last`) = alpha * A B + beta * C.
template <typename T, int ROWS, int NV, int MR>
void uk(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta, __m256i last) {
    using V = Vec<T>;
    using reg = typename V::reg;
    constexpr int NR = 2 * V::W;
    const __m256i full = _mm256_set1_epi32(-1);
    reg acc[ROWS][NV];
    MNN_UNROLL
    for (int i = 0; i < ROWS; ++i) {
        MNN_UNROLL
        for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
    }
    MNN_UNROLL
    for (int i = 0; i < ROWS; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    for (int64_t k = 0; k < kc; ++k) {
        reg bv[NV];
        MNN_UNROLL
        for (int v = 0; v < NV; ++v) bv[v] = V::load(b + v * V::W);
        MNN_UNROLL
        for (int i = 0; i < ROWS; ++i) {
            reg av = V::set1(a + i);
            MNN_UNROLL
            for (int v = 0; v < NV; ++v) acc[i][v] = V::fmadd(av, bv[v], acc[i][v]);
        }
        a += MR;
        b += NR;
    }
    const reg va = V::set1v(alpha);
    if (beta == T(0)) {
        MNN_UNROLL
        for (int i = 0; i < ROWS; ++i) {
            MNN_UNROLL
            for (int v = 0; v < NV; ++v)
                V::storeu(c + i * ldc + v * V::W, v == NV - 1 ? last : full, V::mul(va, acc[i][v]));
        }
    } else {
        const reg vb = V::set1v(beta);
        MNN_UNROLL
        for (int i = 0; i < ROWS; ++i) {
            MNN_UNROLL
            for (int v = 0; v < NV; ++v) {
                T* p = c + i * ldc + v * V::W;
                __m256i m = v == NV - 1 ? last : full;
                V::storeu(p, m, V::fmadd(va, acc[i][v], V::mul(vb, V::loadu(p, m))));
            }
        }
    }
}

template <typename T, int MR, int R>
struct Rows {
    static MNN_INLINE void run(int64_t m, int nv, int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha,
                               T beta, __m256i last) {
        if (m == R) {
            if (nv == 2) uk<T, R, 2, MR>(kc, a, b, c, ldc, alpha, beta, last);
            else uk<T, R, 1, MR>(kc, a, b, c, ldc, alpha, beta, last);
        } else {
            Rows<T, MR, R - 1>::run(m, nv, kc, a, b, c, ldc, alpha, beta, last);
        }
    }
};
template <typename T, int MR>
struct Rows<T, MR, 0> {
    static MNN_INLINE void run(int64_t, int, int64_t, const T*, const T*, T*, int64_t, T, T, __m256i) {}
};

template <typename T>
void macro(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T alpha, T beta) {
    constexpr int W = Vec<T>::W, NR = 2 * W;
    for (int64_t j = 0; j < nc; j += NR) {
        const T* bp = Bp + (j / NR) * NR * kc;
        const int64_t n = imin(NR, nc - j);
        const int nv = n > W ? 2 : 1;
        const __m256i last = Vec<T>::mask(n - (nv - 1) * W);
        for (int64_t i = 0; i < mc; i += kMr) {
            const T* ap = Ap + (i / kMr) * kMr * kc;
            const int64_t m = imin(kMr, mc - i);
            T* c = C + i * ldc + j;
            if (m == kMr && nv == 2) uk<T, kMr, 2, kMr>(kc, ap, bp, c, ldc, alpha, beta, last);
            else Rows<T, kMr, kMr>::run(m, nv, kc, ap, bp, c, ldc, alpha, beta, last);
        }
    }
}

template <typename T>
KernelSet<T> kernel_set(int64_t mc) {
    KernelSet<T> ks;
    ks.name = "avx2";
    ks.mr = kMr;
    ks.nr = 2 * Vec<T>::W;
    ks.kc = 256;
    ks.mc = mc;
    ks.pack_a = &pack_a_impl<T, kMr>;
    ks.pack_b = &pack_b_impl<T, 2 * Vec<T>::W>;
    ks.macro = &macro<T>;
    return ks;
}

}  // namespace

float avx2_fma_probe(int64_t iters) {
    constexpr int kAcc = 12;  // independent chains: >= FMA latency x pipes, within the registers
    __m256 x[kAcc];
    for (int i = 0; i < kAcc; ++i) x[i] = _mm256_set1_ps(float(i) * 0.01f);
    const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
    for (int64_t t = 0; t < iters; ++t) {
        MNN_UNROLL
        for (int i = 0; i < kAcc; ++i) x[i] = _mm256_fmadd_ps(x[i], a, b);
    }
    __m256 s = x[0];
    for (int i = 1; i < kAcc; ++i) s = _mm256_add_ps(s, x[i]);
    alignas(64) float out[8];
    _mm256_storeu_ps(out, s);
    float r = 0;
    for (int i = 0; i < 8; ++i) r += out[i];
    return r;
}
int avx2_fma_lanes() { return 12 * 8; }

KernelSet<float> avx2_f32() { return kernel_set<float>(kMr * 24); }
KernelSet<double> avx2_f64() { return kernel_set<double>(kMr * 16); }

}  // namespace gemmk
}  // namespace mnn
#endif
