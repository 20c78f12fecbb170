// AArch64 NEON GEMM micro-kernels (Advanced SIMD is part of the AArch64 baseline,
// so no per-file flags; gemm.cc picks these at CpuLevel::Neon and the portable
// kernels at MNN_CPU_LEVEL=generic).
//
// float: MR = 8 rows x NR = 12 columns, 24 q-register accumulators; per k one
// load of 8 A values (two registers) and 12 B values (three), and 24
// fused multiply-adds by lane.  double: MR = 4 x NR = 8, 16 accumulators.
// Edge tiles go through make_kernel_set's buffer (gemm_tile.h).
#if defined(__aarch64__)
#include <arm_neon.h>

#include "ops/gemm_tile.h"

namespace mnn {
namespace gemmk {
namespace {

void uk_f32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
    float32x4_t acc[8][3];
    MNN_UNROLL
    for (int i = 0; i < 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = vdupq_n_f32(0.0f);
    for (int64_t k = 0; k < kc; ++k) {
        const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
#define MNN_ROW(i, av, lane)                                  \
        acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av, lane); \
        acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av, lane); \
        acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, av, lane);
        MNN_ROW(0, a0, 0) MNN_ROW(1, a0, 1) MNN_ROW(2, a0, 2) MNN_ROW(3, a0, 3)
        MNN_ROW(4, a1, 0) MNN_ROW(5, a1, 1) MNN_ROW(6, a1, 2) MNN_ROW(7, a1, 3)
#undef MNN_ROW
        a += 8;
        b += 12;
    }
    const float32x4_t va = vdupq_n_f32(alpha);
    MNN_UNROLL
    for (int i = 0; i < 8; ++i) {
        float* r = c + i * ldc;
        MNN_UNROLL
        for (int v = 0; v < 3; ++v) {
            float32x4_t x = vmulq_f32(va, acc[i][v]);
            if (beta != 0.0f) x = vfmaq_n_f32(x, vld1q_f32(r + 4 * v), beta);
            vst1q_f32(r + 4 * v, x);
        }
    }
}

void uk_f64(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, double alpha, double beta) {
    float64x2_t acc[4][4];
    MNN_UNROLL
    for (int i = 0; i < 4; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = vdupq_n_f64(0.0);
    for (int64_t k = 0; k < kc; ++k) {
        const float64x2_t a0 = vld1q_f64(a), a1 = vld1q_f64(a + 2);
        const float64x2_t b0 = vld1q_f64(b), b1 = vld1q_f64(b + 2), b2 = vld1q_f64(b + 4), b3 = vld1q_f64(b + 6);
#define MNN_ROW(i, av, lane)                                  \
        acc[i][0] = vfmaq_laneq_f64(acc[i][0], b0, av, lane); \
        acc[i][1] = vfmaq_laneq_f64(acc[i][1], b1, av, lane); \
        acc[i][2] = vfmaq_laneq_f64(acc[i][2], b2, av, lane); \
        acc[i][3] = vfmaq_laneq_f64(acc[i][3], b3, av, lane);
        MNN_ROW(0, a0, 0) MNN_ROW(1, a0, 1) MNN_ROW(2, a1, 0) MNN_ROW(3, a1, 1)
#undef MNN_ROW
        a += 4;
        b += 8;
    }
    const float64x2_t va = vdupq_n_f64(alpha);
    MNN_UNROLL
    for (int i = 0; i < 4; ++i) {
        double* r = c + i * ldc;
        MNN_UNROLL
        for (int v = 0; v < 4; ++v) {
            float64x2_t x = vmulq_f64(va, acc[i][v]);
            if (beta != 0.0) x = vfmaq_n_f64(x, vld1q_f64(r + 2 * v), beta);
            vst1q_f64(r + 2 * v, x);
        }
    }
}

}  // namespace

KernelSet<float> neon_f32() { return make_kernel_set<float, 8, 12, &uk_f32>("neon", 256, 8 * 16); }
KernelSet<double> neon_f64() { return make_kernel_set<double, 4, 8, &uk_f64>("neon", 256, 4 * 24); }

}  // namespace gemmk
}  // namespace mnn
#endif
