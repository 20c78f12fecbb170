// AVX-512F GEMM micro-kernels (compiled with -mavx512f -mavx2 -mfma; chosen at
// run time by gemm.cc only when the CPU and OS support AVX-512F).
// Register tile: MR rows x two zmm vectors (32 floats / 16 doubles).
#if defined(MNN_GEMM_X86)
#include <immintrin.h>

#include "ops/gemm_tile.h"

namespace mnn {
namespace gemmk {
namespace {

constexpr int kMrF = 14;  // 28 accumulators + 2 B vectors of 32 zmm registers
constexpr int kMrD = 14;

template <int MR>
void uk_f32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
    __m512 c0[MR], c1[MR];
    MNN_UNROLL
    for (int i = 0; i < MR; ++i) {
        c0[i] = _mm512_setzero_ps();
        c1[i] = _mm512_setzero_ps();
    }
    MNN_UNROLL
    for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    for (int64_t k = 0; k < kc; ++k) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            __m512 av = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
        }
        a += MR;
        b += 32;
    }
    __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, c0[i]));
            _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, c1[i]));
        }
    } else {
        __m512 vb = _mm512_set1_ps(beta);
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            float* r = c + i * ldc;
            _mm512_storeu_ps(r, _mm512_fmadd_ps(va, c0[i], _mm512_mul_ps(vb, _mm512_loadu_ps(r))));
            _mm512_storeu_ps(r + 16, _mm512_fmadd_ps(va, c1[i], _mm512_mul_ps(vb, _mm512_loadu_ps(r + 16))));
        }
    }
}

template <int MR>
void uk_f64(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, double alpha, double beta) {
    __m512d c0[MR], c1[MR];
    MNN_UNROLL
    for (int i = 0; i < MR; ++i) {
        c0[i] = _mm512_setzero_pd();
        c1[i] = _mm512_setzero_pd();
    }
    MNN_UNROLL
    for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    for (int64_t k = 0; k < kc; ++k) {
        __m512d b0 = _mm512_load_pd(b), b1 = _mm512_load_pd(b + 8);
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            __m512d av = _mm512_set1_pd(a[i]);
            c0[i] = _mm512_fmadd_pd(av, b0, c0[i]);
            c1[i] = _mm512_fmadd_pd(av, b1, c1[i]);
        }
        a += MR;
        b += 16;
    }
    __m512d va = _mm512_set1_pd(alpha);
    if (beta == 0.0) {
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            _mm512_storeu_pd(c + i * ldc, _mm512_mul_pd(va, c0[i]));
            _mm512_storeu_pd(c + i * ldc + 8, _mm512_mul_pd(va, c1[i]));
        }
    } else {
        __m512d vb = _mm512_set1_pd(beta);
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            double* r = c + i * ldc;
            _mm512_storeu_pd(r, _mm512_fmadd_pd(va, c0[i], _mm512_mul_pd(vb, _mm512_loadu_pd(r))));
            _mm512_storeu_pd(r + 8, _mm512_fmadd_pd(va, c1[i], _mm512_mul_pd(vb, _mm512_loadu_pd(r + 8))));
        }
    }
}

}  // namespace

KernelSet<float> avx512_f32() { return make_kernel_set<float, kMrF, 32, &uk_f32<kMrF>>("avx512", 256, kMrF * 12); }
KernelSet<double> avx512_f64() { return make_kernel_set<double, kMrD, 16, &uk_f64<kMrD>>("avx512", 256, kMrD * 8); }

}  // namespace gemmk
}  // namespace mnn
#endif
