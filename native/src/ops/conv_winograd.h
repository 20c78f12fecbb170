// Winograd convolution F(m x m, 3 x 3) for 3x3, stride 1, dilation 1, ungrouped float32
// conv2d (conv_winograd.cc), m = 2, 4 or 6: each m x m output tile from an (m+2) x (m+2)
// input tile as y = A^T [ (G g G^T) . (B^T d B) ] A, the elementwise products of all tiles
// done as (m+2)^2 GEMMs [O, C] @ [C, tiles] with the packed GEMM micro-kernels.
//
// Accuracy (float32, against a float64 reference, tests/test_winograd.py): per output,
//   |y - y_ref| <= bound(m) * (sum_{c,i,j} |w[o,c,i,j]| |x[n,c,oh+i,ow+j]| + |bias| + |residual|)
// with bound(2) = 1e-6, bound(4) = 1e-5, bound(6) = 3e-5 (measured maxima about 3e-7, 3e-6,
// 7e-6; the implicit GEMM path about 1e-7).
#pragma once
#include <cstdint>

#include "ops/conv_epilogue.h"

namespace mnn {
namespace convgeom {

// The tile size conv2d should use for this layer: 0 (not Winograd) or 2, 4, 6.  The
// environment variable MNN_CONV_WINOGRAD=0|2|4|6 (read on every call) forces it for any
// eligible layer (0: never Winograd); unset or other values: chosen by shape (and whether the
// transformed weights can be cached: not for bytes someone may rewrite, Storage::rewritable).
int winograd_tile(const DirectConv& d, bool is_float32, bool weights_cached);

// conv2d through F(m x m, 3 x 3); d must be eligible (3x3, stride 1, dilation 1, one group).
void conv2d_winograd(const DirectConv& d, int m, const float* x, const Tensor& w, const EpiRt<float>& epi, float* y);

// The cache of transformed, packed weights (one entry per weight tensor, tile size and CPU level).
void clear_winograd_weights();
int64_t winograd_weights_bytes();

}  // namespace convgeom
}  // namespace mnn
