// Portable GEMM micro-kernels: plain C++ the compiler vectorises for the
// baseline ISA (SSE2 on x86-64, NEON on AArch64).  Always present.
#include "ops/gemm_tile.h"

namespace mnn {
namespace gemmk {
namespace {

template <typename T, int MR, int NR>
void uk_generic(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta) {
    T acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k) {
        MNN_UNROLL
        for (int i = 0; i < MR; ++i) {
            T av = a[i];
            MNN_UNROLL
            for (int j = 0; j < NR; ++j) acc[i][j] += av * b[j];
        }
        a += MR;
        b += NR;
    }
    for (int i = 0; i < MR; ++i) {
        T* r = c + i * ldc;
        if (beta == T(0))
            for (int j = 0; j < NR; ++j) r[j] = alpha * acc[i][j];
        else
            for (int j = 0; j < NR; ++j) r[j] = alpha * acc[i][j] + beta * r[j];
    }
}

constexpr int kProbeAcc = 32;  // plain floats: the compiler packs them into baseline vectors

}  // namespace

float generic_fma_probe(int64_t iters) {
    float x[kProbeAcc];
    for (int i = 0; i < kProbeAcc; ++i) x[i] = float(i) * 0.01f;
    const float a = 0.999f, b = 0.001f;
    for (int64_t t = 0; t < iters; ++t) {
        MNN_UNROLL
        for (int i = 0; i < kProbeAcc; ++i) x[i] = x[i] * a + b;
    }
    float s = 0;
    for (int i = 0; i < kProbeAcc; ++i) s += x[i];
    return s;
}
int generic_fma_lanes() { return kProbeAcc; }

KernelSet<float> generic_f32() { return make_kernel_set<float, 4, 8, &uk_generic<float, 4, 8>>("generic", 256, 128); }
KernelSet<double> generic_f64() { return make_kernel_set<double, 4, 4, &uk_generic<double, 4, 4>>("generic", 256, 128); }

}  // namespace gemmk
}  // namespace mnn
