// AVX-512F GEMM micro-kernels (compiled with -mavx512f -mavx2 -mfma; chosen at
// run time by gemm.cc only when the CPU and OS support AVX-512F).
//
// Register tile: MR = 14 rows x two zmm vectors (32 floats / 16 doubles):
// 28 accumulators + 2 B vectors of the 32 zmm registers.  Edge tiles run a
// kernel instantiated for exactly the rows left (1..13) and one or two
// vectors, with masked loads / stores for the last partial vector, so no
// work is wasted on padding and no temporary tile is needed.
#if defined(MNN_GEMM_X86)
#include <immintrin.h>

#include "ops/gemm_tile.h"

namespace mnn {
namespace gemmk {
namespace {

constexpr int kMr = 14;

template <typename T> struct Vec;

template <> struct Vec<float> {
    using reg = __m512;
    using mask = __mmask16;
    static constexpr int W = 16;
    static MNN_INLINE reg zero() { return _mm512_setzero_ps(); }
    static MNN_INLINE reg load(const float* p) { return _mm512_load_ps(p); }
    static MNN_INLINE reg set1(float v) { return _mm512_set1_ps(v); }
    static MNN_INLINE reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
    static MNN_INLINE reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
    static MNN_INLINE reg loadu(const float* p, mask m) { return _mm512_maskz_loadu_ps(m, p); }
    static MNN_INLINE void storeu(float* p, mask m, reg v) { _mm512_mask_storeu_ps(p, m, v); }
};

template <> struct Vec<double> {
    using reg = __m512d;
    using mask = __mmask8;
    static constexpr int W = 8;
    static MNN_INLINE reg zero() { return _mm512_setzero_pd(); }
    static MNN_INLINE reg load(const double* p) { return _mm512_load_pd(p); }
    static MNN_INLINE reg set1(double v) { return _mm512_set1_pd(v); }
    static MNN_INLINE reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
    static MNN_INLINE reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
    static MNN_INLINE reg loadu(const double* p, mask m) { return _mm512_maskz_loadu_pd(m, p); }
    static MNN_INLINE void storeu(double* p, mask m, reg v) { _mm512_mask_storeu_pd(p, m, v); }
};

// C[0:ROWS, 0:NV*W] (the last vector limited by `last`) = alpha * A B + beta * C.
// A panel rows are MR apart per k, B panel rows 2*W apart.
template <typename T, int ROWS, int NV, int MR>
void uk(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta, typename Vec<T>::mask last) {
    using V = Vec<T>;
    using reg = typename V::reg;
    constexpr int NR = 2 * V::W;
    const typename V::mask full = typename V::mask(~0u);
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
            reg av = V::set1(a[i]);
            MNN_UNROLL
            for (int v = 0; v < NV; ++v) acc[i][v] = V::fmadd(av, bv[v], acc[i][v]);
        }
        a += MR;
        b += NR;
    }
    const reg va = V::set1(alpha);
    if (beta == T(0)) {
        MNN_UNROLL
        for (int i = 0; i < ROWS; ++i) {
            MNN_UNROLL
            for (int v = 0; v < NV; ++v)
                V::storeu(c + i * ldc + v * V::W, v == NV - 1 ? last : full, V::mul(va, acc[i][v]));
        }
    } else {
        const reg vb = V::set1(beta);
        MNN_UNROLL
        for (int i = 0; i < ROWS; ++i) {
            MNN_UNROLL
            for (int v = 0; v < NV; ++v) {
                T* p = c + i * ldc + v * V::W;
                typename V::mask m = v == NV - 1 ? last : full;
                V::storeu(p, m, V::fmadd(va, acc[i][v], V::mul(vb, V::loadu(p, m))));
            }
        }
    }
}

// Calls uk<ROWS = m> for a run-time m in [1, R].
template <typename T, int MR, int R>
struct Rows {
    static MNN_INLINE void run(int64_t m, int nv, int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha,
                               T beta, typename Vec<T>::mask last) {
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
    static MNN_INLINE void run(int64_t, int, int64_t, const T*, const T*, T*, int64_t, T, T, typename Vec<T>::mask) {}
};

template <typename T>
void macro(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T alpha, T beta) {
    constexpr int W = Vec<T>::W, NR = 2 * W;
    for (int64_t j = 0; j < nc; j += NR) {
        const T* bp = Bp + (j / NR) * NR * kc;
        const int64_t n = imin(NR, nc - j);
        const int nv = n > W ? 2 : 1;
        const int64_t rem = n - (nv - 1) * W;  // columns in the last vector, 1..W
        const auto last = typename Vec<T>::mask((1u << rem) - 1u);
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
    ks.name = "avx512";
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

KernelSet<float> avx512_f32() { return kernel_set<float>(kMr * 12); }
KernelSet<double> avx512_f64() { return kernel_set<double>(kMr * 8); }

}  // namespace gemmk
}  // namespace mnn
#endif
