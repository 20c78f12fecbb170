// GEMM shared by matmul and convolution.  Reference implementation for now.
#include "ops/common.h"
#include "core/thread_pool.h"

namespace mnn {

template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb,
          T beta, T* C, int64_t ldc) {
    parallel_for(M, 4, [&](int64_t m0, int64_t m1) {
        for (int64_t m = m0; m < m1; ++m) {
            T* c = C + m * ldc;
            for (int64_t n = 0; n < N; ++n) c[n] = beta == T(0) ? T(0) : beta * c[n];
            for (int64_t k = 0; k < K; ++k) {
                T a = alpha * (ta ? A[k * lda + m] : A[m * lda + k]);
                if (!tb) { const T* b = B + k * ldb; for (int64_t n = 0; n < N; ++n) c[n] += a * b[n]; }
                else for (int64_t n = 0; n < N; ++n) c[n] += a * B[n * ldb + k];
            }
        }
    });
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*, int64_t, double, double*, int64_t);

}  // namespace mnn
