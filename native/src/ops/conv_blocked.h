// Channel-blocked convolutions (DESIGN §7: packed layouts inside convolution chains).
//
// Inside a chain of convolutions the layout pass (graph/layout_pass.cc) stores the values
// that pass from one convolution to the next as [N, ceil(C / 16), H, W, 16]: sixteen
// channels of a pixel side by side, the channels past C zero.  Then one vector holds one
// pixel's 16 channels, whatever the image width, so
//   - a 1x1 convolution is a register-blocked product that broadcasts one input value
//     against the 16 output channels of a weight vector (no packing of the activations),
//   - a depthwise convolution multiplies whole vectors, also on 7x7 and 14x14 planes where
//     rows of NCHW fill a vector badly,
//   - a small dense convolution (a stem: few input channels) writes whole vectors.
// A blocked tensor is a 5-d tensor; a kernel knows its input or output is blocked from
// its rank, so the chain's first convolution reads NCHW and its last one writes NCHW (no
// reorder steps: the conversions happen inside them).
#pragma once
#include <cstdint>
#include <vector>

#include "core/attrs.h"
#include "core/tensor.h"
#include "ops/conv_common.h"
#include "ops/conv_epilogue.h"

namespace mnn {
namespace convgeom {

constexpr int64_t kChannelBlock = 16;
inline int64_t channel_blocks(int64_t C) { return (C + kChannelBlock - 1) / kChannelBlock; }

// The blocked kernels: which one serves a float32 convolution (None: it keeps its NCHW paths).
enum class BlockedConv : uint8_t {
    None,
    Pointwise,  // 1x1, stride 1, no padding, one group
    Depthwise,  // one input and one output channel per group (any window, stride, padding, dilation)
    Dense,      // one group, at most kDenseMaxChannels input channels (a network's stem)
};
constexpr int64_t kDenseMaxChannels = 4;
BlockedConv blocked_conv_kind(const DirectConv& d);

// conv2d through the epilogue `e` (no per-channel operands; a Full operand is laid out like
// the output) where x and/or y are blocked (5-d); the other is NCHW.  Batched inputs only.
void conv2d_blocked(const DirectConv& d, const Tensor& x, const Tensor& w, const EpiRt<float>& e, Tensor& y);

// A 1x1 convolution p (x -> e channels, an epilogue without same-shape operands) and the 3x3
// depthwise convolution d that alone reads its output (stride 1 or 2, padding <= 1, dilation 1),
// in one pass: each thread takes a band of output rows and expands the input rows it needs into
// a ring of three rows (all channels, in L2), so the expanded tensor never goes to memory.
bool expand_depthwise_suits(const DirectConv& p, const DirectConv& d);
void conv2d_expand_depthwise(const DirectConv& p, const Tensor& x, const Tensor& pw, const EpiRt<float>& pe,
                             const DirectConv& d, const Tensor& dw, const EpiRt<float>& de, Tensor& y);

}  // namespace convgeom

// conv2d (attributes pa, inputs pins, epilogue pe) followed by the depthwise conv2d (da, dins with
// dins[0] unused: its input is the first one's output, de), as conv2d_expand_depthwise: y blocked.
void conv2d_expand_depthwise(const Attrs& pa, const std::vector<Tensor>& pins, const ConvEpilogue& pe,
                             const Attrs& da, const std::vector<Tensor>& dins, const ConvEpilogue& de, Tensor& y);
// Whether those two convolutions (on NCHW inputs of these infos; d's input info is p's output) fuse so.
bool conv2d_expand_depthwise_suits(const Attrs& pa, const std::vector<TensorInfo>& pins, const Attrs& da,
                                   const std::vector<TensorInfo>& dins);

// The blocked kernel (convgeom::BlockedConv) that would serve conv2d with these attributes on
// NCHW inputs of these infos (float32, batched, bias optional); None when none would or the
// inputs are invalid.  Used by the layout pass.
convgeom::BlockedConv conv2d_blocked_kind(const Attrs& attrs, const std::vector<TensorInfo>& ins);

// Whether blocked chains pay at the active CPU level: at AVX-512 only.  The kernels are written
// over 16-lane vectors, one register there; below, GCC spreads each over several registers
// through the stack, and the NCHW kernels measured faster (MobileNetV2 b1, 2 threads: 35 vs
// 8.3 ms at AVX2, 22 vs 18 ms at the baseline).  MNN_LAYOUT_ALL_LEVELS=1 in the environment
// blocks at every level (the tests run the kernels' other variants so).
bool blocked_layout_pays();

// The blocked info of an NCHW float tensor: [N, ceil(C / 16), H, W, 16].
TensorInfo blocked_info(const TensorInfo& nchw);

}  // namespace mnn
