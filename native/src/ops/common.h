// Helpers shared by the op families: casting, broadcasting, dtype checks,
// and the GEMM entry point that matmul and convolution share.
#pragma once
#include <type_traits>
#include <vector>

#include "core/registry.h"
#include "core/tensor.h"

namespace mnn {

Tensor cast_tensor(const Tensor& x, DType to);
void cast_into(const Tensor& src, Tensor& dst);  // same shape, any dtypes

// NumPy broadcasting of two shapes; throws ValueError naming `op`.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Strides (in elements) to read `in` as if it had shape `out` (0 on broadcast dims).
Shape broadcast_strides(const Shape& in, const Shape& out);

// NaN test for any element type (integers are never NaN).
template <typename T> inline bool is_nan(T v) {
    if constexpr (std::is_floating_point_v<T>) return v != v;
    else return false;
}

// A tensor seen as [outer, n, inner] around one axis (reductions, scans, sorts).
struct AxisLayout { int64_t outer, n, inner; };
AxisLayout axis_layout(const Shape& s, int axis);

// C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C, row-major with leading
// dimensions; op() transposes when the flag is set.  Implemented in
// ops/gemm.cc; thread-parallel over the one pool.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// GEMM whose B operand is produced on the fly (e.g. convolution's im2col, so
// the unfolded matrix is never stored): pack(ctx, k0, kc, j0, n, nr, dst)
// writes op(B)[k0 + k, j0 + j] to dst[k * nr + j] for k < kc, j < n, and 0
// for n <= j < nr.  It runs concurrently for disjoint panels.
template <typename T>
using GemmPackB = void (*)(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t n, int64_t nr, T* dst);
template <typename T>
void gemm_pack_b(bool trans_a, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                 GemmPackB<T> pack_b, const void* ctx, T beta, T* C, int64_t ldc);

// The CPU level the GEMM kernels run at: "generic", "avx2" or "avx512"
// (the hardware's best, capped by MNN_CPU_LEVEL=generic|avx2|avx512).
const char* gemm_cpu_level();

}  // namespace mnn
