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

}  // namespace

KernelSet<float> generic_f32() { return make_kernel_set<float, 4, 8, &uk_generic<float, 4, 8>>("generic", 256, 128); }
KernelSet<double> generic_f64() { return make_kernel_set<double, 4, 4, &uk_generic<double, 4, 4>>("generic", 256, 128); }

}  // namespace gemmk
}  // namespace mnn
