// Geometry shared by the convolution and pooling ops (conv.cc, pool.cc):
// attribute checks and output sizes, NCHW (or unbatched CHW) inputs.
#pragma once
#include <array>
#include <string>

#include "ops/common.h"

namespace mnn {
namespace convgeom {

// A 2-int attribute (stride, dilation, kernel, output_padding) with every value >= lo.
inline std::array<int64_t, 2> pair_attr(const Attrs& attrs, const char* key, int64_t lo) {
    const std::vector<int64_t>& v = attrs.ints(key);
    MNN_CHECK_VALUE(v.size() == 2, attrs.op_name, ": '", key, "' must have 2 values (height, width), got ",
                    shape_str(v));
    MNN_CHECK_VALUE(v[0] >= lo && v[1] >= lo, attrs.op_name, ": '", key, "' values must be >= ", lo, ", got ",
                    shape_str(v));
    return {v[0], v[1]};
}

// pads = [top, left, bottom, right], all >= 0.
inline std::array<int64_t, 4> pads_attr(const Attrs& attrs) {
    const std::vector<int64_t>& v = attrs.ints("pads");
    MNN_CHECK_VALUE(v.size() == 4, attrs.op_name, ": 'pads' must have 4 values [top, left, bottom, right], got ",
                    shape_str(v));
    for (int64_t p : v)
        MNN_CHECK_VALUE(p >= 0, attrs.op_name, ": 'pads' must be >= 0, got ", shape_str(v));
    return {v[0], v[1], v[2], v[3]};
}

// Input as [N, C, H, W]; a 3-d input is one unbatched image [C, H, W].
struct Image {
    int64_t N, C, H, W;
    bool batched;
};

inline Image image_of(const char* op, const TensorInfo& x, const char* what = "input") {
    MNN_CHECK_VALUE(x.shape.size() == 4 || x.shape.size() == 3, op, ": ", what,
                    " must be 4-d [N, C, H, W] (or 3-d [C, H, W]), got ", info_str(x));
    if (x.shape.size() == 3) return {1, x.shape[0], x.shape[1], x.shape[2], false};
    return {x.shape[0], x.shape[1], x.shape[2], x.shape[3], true};
}

inline Shape image_shape(const Image& im, int64_t C, int64_t H, int64_t W) {
    if (im.batched) return {im.N, C, H, W};
    return {C, H, W};
}

// Output length of a sliding window over `in` (+ pads); ValueError when the
// window does not fit.  ceil_mode follows PyTorch: the last window must start
// inside the input or the leading padding.
inline int64_t window_out(const char* op, const char* axis, int64_t in, int64_t k, int64_t s, int64_t pad0,
                          int64_t pad1, int64_t d, bool ceil_mode) {
    int64_t eff = d * (k - 1) + 1;
    int64_t span = in + pad0 + pad1 - eff;
    MNN_CHECK_VALUE(span >= 0, op, ": the ", axis, " window (kernel ", k, ", dilation ", d, ", extent ", eff,
                    ") is larger than the padded input (", in, " + ", pad0, " + ", pad1, " = ", in + pad0 + pad1, ")");
    int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (out - 1) * s >= in + pad0) --out;
    return out;
}

// A convolution as the direct kernels (conv_direct.cc) see it: input [N, C, H, W],
// output (or its gradient) [N, O, OH, OW], kernel kh x kw, G groups; pads are
// the top / left offsets (bottom / right follow from OH, OW).
struct DirectConv {
    int64_t N, C, H, W, O, G, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl;
};

// Direct kernels serve stride 1 with at most kDirectMaxTaps taps per output
// (C / G * kh * kw): small layers, where unfolding costs more than the arithmetic
// (on LeNet's layers, 25 and 150 taps: 2-3x faster than unfold + GEMM).
constexpr int64_t kDirectMaxTaps = 256;
bool direct_conv_suits(const DirectConv& d);

// (conv2d_direct, writing through an epilogue, is declared in conv_epilogue.h.)
// dw[O, C / G, kh, kw] = conv2d's weight gradient for input x and output gradient dy.
template <typename T> void conv2d_filter_direct(const DirectConv& d, const T* x, const T* dy, T* dw);

}  // namespace convgeom
}  // namespace mnn
