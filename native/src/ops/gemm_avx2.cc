// AVX2 + FMA GEMM micro-kernels (compiled with -mavx2 -mfma; chosen at run
// time by gemm.cc only when the CPU supports both).
// Register tile: 6 rows x two ymm vectors (16 floats / 8 doubles), 12 accumulators.
#if defined(MNN_GEMM_X86)
#include <immintrin.h>

#include "ops/gemm_tile.h"

namespace mnn {
namespace gemmk {
namespace {

constexpr int kMr = 6;

template <int MR>
void uk_f32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
    __m256 c0[MR], c1[MR];
    MNN_UNROLL
    for (int i = 0; i < MR; ++i) {
        c0[i] = _mm256_setzero_ps();
        c1[i] = _mm256_setzero_ps();
    }
    MNN_UNROLL
    for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    for (int64_t k = 0; k < kc; ++k) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            __m256 av = _mm256_broadcast_ss(a + i);
            c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
        }
        a += MR;
        b += 16;
    }
    __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, c0[i]));
            _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, c1[i]));
        }
    } else {
        __m256 vb = _mm256_set1_ps(beta);
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            float* r = c + i * ldc;
            _mm256_storeu_ps(r, _mm256_fmadd_ps(va, c0[i], _mm256_mul_ps(vb, _mm256_loadu_ps(r))));
            _mm256_storeu_ps(r + 8, _mm256_fmadd_ps(va, c1[i], _mm256_mul_ps(vb, _mm256_loadu_ps(r + 8))));
        }
    }
}

template <int MR>
void uk_f64(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, double alpha, double beta) {
    __m256d c0[MR], c1[MR];
    MNN_UNROLL
    for (int i = 0; i < MR; ++i) {
        c0[i] = _mm256_setzero_pd();
        c1[i] = _mm256_setzero_pd();
    }
    MNN_UNROLL
    for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    for (int64_t k = 0; k < kc; ++k) {
        __m256d b0 = _mm256_load_pd(b), b1 = _mm256_load_pd(b + 4);
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            __m256d av = _mm256_broadcast_sd(a + i);
            c0[i] = _mm256_fmadd_pd(av, b0, c0[i]);
            c1[i] = _mm256_fmadd_pd(av, b1, c1[i]);
        }
        a += MR;
        b += 8;
    }
    __m256d va = _mm256_set1_pd(alpha);
    if (beta == 0.0) {
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            _mm256_storeu_pd(c + i * ldc, _mm256_mul_pd(va, c0[i]));
            _mm256_storeu_pd(c + i * ldc + 4, _mm256_mul_pd(va, c1[i]));
        }
    } else {
        __m256d vb = _mm256_set1_pd(beta);
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            double* r = c + i * ldc;
            _mm256_storeu_pd(r, _mm256_fmadd_pd(va, c0[i], _mm256_mul_pd(vb, _mm256_loadu_pd(r))));
            _mm256_storeu_pd(r + 4, _mm256_fmadd_pd(va, c1[i], _mm256_mul_pd(vb, _mm256_loadu_pd(r + 4))));
        }
    }
}

}  // namespace

KernelSet<float> avx2_f32() { return make_kernel_set<float, kMr, 16, &uk_f32<kMr>>("avx2", 256, kMr * 24); }
KernelSet<double> avx2_f64() { return make_kernel_set<double, kMr, 8, &uk_f64<kMr>>("avx2", 256, kMr * 16); }

}  // namespace gemmk
}  // namespace mnn
#endif
