// Convolution: Conv2d (implicit GEMM over padded phase planes, conv_gemm.cc;
// depthwise, conv_depthwise.cc; small stride-1 layers, conv_direct.cc; all
// writing through an epilogue, conv_epilogue.h) and ConvTranspose2d (GEMM +
// col2im), NCHW (or unbatched CHW), float32/float64 (halves are widened by the
// executor).
// Pooling lives in pool.cc and is registered from here.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/thread_pool.h"
#include "ops/common.h"
#include "ops/conv_common.h"
#include "ops/conv_epilogue.h"
#include "ops/conv_blocked.h"
#include "ops/conv_winograd.h"
#include "ops/isa_variants.h"

namespace mnn {

void register_pool_ops();  // pool.cc

namespace {

using convgeom::Image;

constexpr int64_t kTaskFlops = int64_t(1) << 22;  // below this per image, images go in parallel

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// Output positions o in [lo, hi) with 0 <= o * s + off < in.
inline void valid_range(int64_t off, int64_t s, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
    lo = std::min<int64_t>(out, std::max<int64_t>(0, ceil_div(-off, s)));
    hi = std::max<int64_t>(lo, std::min<int64_t>(out, ceil_div(in - off, s)));
}

struct ConvGeom {
    Image im;
    int64_t O, groups, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, OH, OW;
    int64_t oph = 0, opw = 0;
    bool has_bias;
};

void check_inputs(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    const char* name = attrs.op_name;
    MNN_CHECK_TYPE(in.size() == 2 || in.size() == 3, name, ": expected 2 or 3 inputs (input, weight[, bias]), got ",
                   in.size());
    MNN_CHECK_TYPE(is_float(in[0].dtype), name, ": expected a float input, got ", info_str(in[0]));
    for (size_t i = 1; i < in.size(); ++i)
        MNN_CHECK_TYPE(in[i].dtype == in[0].dtype, name, ": input, weight and bias must share a dtype, got ",
                       info_str(in[0]), " and ", info_str(in[i]));
    MNN_CHECK_VALUE(in[1].shape.size() == 4, name, ": weight must be 4-d, got ", info_str(in[1]));
}

void check_bias(const Attrs& attrs, const std::vector<TensorInfo>& in, int64_t O) {
    if (in.size() < 3) return;
    MNN_CHECK_VALUE(in[2].shape == Shape{O}, attrs.op_name, ": bias must have shape [", O, "] (output channels), got ",
                    info_str(in[2]));
}

ConvGeom conv_geom(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    const char* name = attrs.op_name;
    check_inputs(attrs, in);
    ConvGeom g;
    g.im = convgeom::image_of(name, in[0]);
    const Shape& w = in[1].shape;
    g.groups = attrs.i("groups");
    MNN_CHECK_VALUE(g.groups >= 1, name, ": groups must be >= 1, got ", g.groups);
    MNN_CHECK_VALUE(g.im.C % g.groups == 0, name, ": input channels ", g.im.C, " are not divisible by groups ", g.groups);
    MNN_CHECK_VALUE(w[1] * g.groups == g.im.C, name, ": weight ", info_str(in[1]), " expects ", w[1] * g.groups,
                    " input channels (weight[1] * groups), got input ", info_str(in[0]));
    MNN_CHECK_VALUE(w[0] % g.groups == 0, name, ": output channels ", w[0], " are not divisible by groups ", g.groups);
    MNN_CHECK_VALUE(w[2] >= 1 && w[3] >= 1, name, ": kernel must be at least 1x1, got weight ", info_str(in[1]));
    g.O = w[0];
    g.kh = w[2];
    g.kw = w[3];
    auto s = convgeom::pair_attr(attrs, "stride", 1), d = convgeom::pair_attr(attrs, "dilation", 1);
    auto p = convgeom::pads_attr(attrs);
    g.sh = s[0]; g.sw = s[1]; g.dh = d[0]; g.dw = d[1];
    g.pt = p[0]; g.pl = p[1]; g.pb = p[2]; g.pr = p[3];
    g.OH = convgeom::window_out(name, "height", g.im.H, g.kh, g.sh, g.pt, g.pb, g.dh, false);
    g.OW = convgeom::window_out(name, "width", g.im.W, g.kw, g.sw, g.pl, g.pr, g.dw, false);
    check_bias(attrs, in, g.O);
    g.has_bias = in.size() == 3;
    return g;
}

std::vector<TensorInfo> conv2d_infer(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    ConvGeom g = conv_geom(attrs, in);
    return {TensorInfo{in[0].dtype, convgeom::image_shape(g.im, g.O, g.OH, g.OW)}};
}

template <typename T>
void fill_bias(T* out, int64_t channels, int64_t plane, const T* bias) {
    for (int64_t o = 0; o < channels; ++o) std::fill(out + o * plane, out + (o + 1) * plane, bias ? bias[o] : T(0));
}

template <typename T>
EpiRt<T> make_epilogue(const ConvGeom& g, const std::vector<Tensor>& ins, const ConvEpilogue* epi) {
    EpiRt<T> e;
    e.bias = g.has_bias ? ins[2].data<T>() : nullptr;
    e.O = g.O;
    e.P = g.OH * g.OW;
    if (epi)
        for (const EpilogueOp& op : epi->ops)
            e.ops[e.n_ops++] = {op.kind, op.operand, op.swap,
                                op.operand == EpilogueOp::None ? nullptr : ins[size_t(op.input)].data<T>()};
    return e;
}

// conv2d of ins[0], ins[1] (+ bias) through the epilogue `e`, by the path that suits the layer:
// depthwise, Winograd (3x3 stride-1 float32 layers with enough channels, conv_winograd.cc;
// MNN_CONV_WINOGRAD=0|2|4|6 forces the tile size, 0 = off), direct (small stride-1 layers)
// or implicit GEMM.
template <typename T>
void conv2d_typed(const ConvGeom& g, const Tensor& xt, const Tensor& wt, const EpiRt<T>& e, Tensor& yt) {
    if (yt.numel() == 0) return;
    const T* x = xt.data<T>();
    const T* w = wt.data<T>();
    T* y = yt.data<T>();
    const int64_t C = g.im.C, G = g.groups, Cg = C / G, P = g.OH * g.OW;
    if (Cg == 0) {  // no input channels: the bias alone
        std::fill(y, y + yt.numel(), T(0));
        for (int64_t n = 0; n < g.im.N; ++n) epilogue_block<T, 4>(e, n, 0, g.O, 0, y + n * g.O * P, P, P);
        return;
    }
    const convgeom::DirectConv dc{g.im.N, C, g.im.H, g.im.W, g.O, G, g.OH, g.OW, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw,
                                  g.pt, g.pl};
    if (Cg == 1 && G > 1) return convgeom::conv2d_depthwise(dc, x, w, e, y);
    if constexpr (std::is_same_v<T, float>)
        if (const int m = convgeom::winograd_tile(dc, true, wt.storage && !wt.storage->rewritable))
            return convgeom::conv2d_winograd(dc, m, x, wt, e, y);
    const bool pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 &&
                           g.pb == 0 && g.pr == 0;
    if (!pointwise && convgeom::direct_conv_suits(dc)) return convgeom::conv2d_direct(dc, x, w, e, y);
    convgeom::conv2d_gemm(dc, x, wt, e, y);
}

void conv2d_kernel(const Attrs& attrs, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    std::vector<TensorInfo> infos;
    for (const Tensor& t : in) infos.push_back(t.info);
    ConvGeom g = conv_geom(attrs, infos);
    MNN_DISPATCH_FLOAT(in[0].dtype(), attrs.op_name,
                       conv2d_typed<scalar_t>(g, in[0], in[1], make_epilogue<scalar_t>(g, in, nullptr), out[0]));
}

// ---- ConvTranspose2d -----------------------------------------------------------
// weight [C_in, O / groups, kh, kw] (PyTorch's layout); output size
// (H - 1) * stride - pad_top - pad_bottom + dilation * (kh - 1) + output_padding + 1.

ConvGeom deconv_geom(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    const char* name = attrs.op_name;
    check_inputs(attrs, in);
    ConvGeom g;
    g.im = convgeom::image_of(name, in[0]);
    const Shape& w = in[1].shape;
    g.groups = attrs.i("groups");
    MNN_CHECK_VALUE(g.groups >= 1, name, ": groups must be >= 1, got ", g.groups);
    MNN_CHECK_VALUE(g.im.C % g.groups == 0, name, ": input channels ", g.im.C, " are not divisible by groups ", g.groups);
    MNN_CHECK_VALUE(w[0] == g.im.C, name, ": weight ", info_str(in[1]),
                    " must be [C_in, C_out / groups, kh, kw] with C_in = ", g.im.C, " (input ", info_str(in[0]), ")");
    MNN_CHECK_VALUE(w[2] >= 1 && w[3] >= 1, name, ": kernel must be at least 1x1, got weight ", info_str(in[1]));
    g.O = w[1] * g.groups;
    g.kh = w[2];
    g.kw = w[3];
    auto s = convgeom::pair_attr(attrs, "stride", 1), d = convgeom::pair_attr(attrs, "dilation", 1);
    auto op = convgeom::pair_attr(attrs, "output_padding", 0);
    auto p = convgeom::pads_attr(attrs);
    g.sh = s[0]; g.sw = s[1]; g.dh = d[0]; g.dw = d[1];
    g.pt = p[0]; g.pl = p[1]; g.pb = p[2]; g.pr = p[3];
    g.oph = op[0]; g.opw = op[1];
    MNN_CHECK_VALUE(g.oph < std::max(g.sh, g.dh) && g.opw < std::max(g.sw, g.dw), name, ": output_padding ",
                    shape_str({g.oph, g.opw}), " must be smaller than stride or dilation (stride ",
                    shape_str({g.sh, g.sw}), ", dilation ", shape_str({g.dh, g.dw}), ")");
    g.OH = (g.im.H - 1) * g.sh - g.pt - g.pb + g.dh * (g.kh - 1) + g.oph + 1;
    g.OW = (g.im.W - 1) * g.sw - g.pl - g.pr + g.dw * (g.kw - 1) + g.opw + 1;
    MNN_CHECK_VALUE(g.OH >= 0 && g.OW >= 0, name, ": output size ", shape_str({g.OH, g.OW}),
                    " would be negative for input ", info_str(in[0]), " and weight ", info_str(in[1]),
                    " (pads too large)");
    check_bias(attrs, in, g.O);
    g.has_bias = in.size() == 3;
    return g;
}

std::vector<TensorInfo> deconv_infer(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    ConvGeom g = deconv_geom(attrs, in);
    return {TensorInfo{in[0].dtype, convgeom::image_shape(g.im, g.O, g.OH, g.OW)}};
}

// y[o, ih*sh - pt + i*dh, iw*sw - pl + j*dw] += col[(o*kh + i)*kw + j, ih*W + iw], channels [o0, o1).
template <typename T>
void col2im_channels(const ConvGeom& g, const T* col, T* y, int64_t o0, int64_t o1) {
    const int64_t H = g.im.H, W = g.im.W, OH = g.OH, OW = g.OW, HW = H * W;
    for (int64_t o = o0; o < o1; ++o) {
        T* yo = y + o * OH * OW;
        for (int64_t i = 0; i < g.kh; ++i) {
            int64_t hlo, hhi;  // input rows landing inside the output
            valid_range(i * g.dh - g.pt, g.sh, OH, H, hlo, hhi);
            for (int64_t j = 0; j < g.kw; ++j) {
                int64_t wlo, whi;
                valid_range(j * g.dw - g.pl, g.sw, OW, W, wlo, whi);
                const T* cr = col + ((o * g.kh + i) * g.kw + j) * HW;
                for (int64_t ih = hlo; ih < hhi; ++ih) {
                    T* yrow = yo + (ih * g.sh - g.pt + i * g.dh) * OW + j * g.dw - g.pl;
                    const T* c = cr + ih * W;
                    if (g.sw == 1)
                        for (int64_t iw = wlo; iw < whi; ++iw) yrow[iw] += c[iw];
                    else
                        for (int64_t iw = wlo; iw < whi; ++iw) yrow[iw * g.sw] += c[iw];
                }
            }
        }
    }
}

template <typename T>
void deconv_typed(const ConvGeom& g, const Tensor& xt, const Tensor& wt, const T* bias, Tensor& yt) {
    const T* x = xt.data<T>();
    const T* w = wt.data<T>();
    T* y = yt.data<T>();
    const int64_t N = g.im.N, C = g.im.C, HW = g.im.H * g.im.W, O = g.O, G = g.groups;
    const int64_t Cg = C / G, Og = O / G, Kd = Og * g.kh * g.kw, P = g.OH * g.OW;
    if (yt.numel() == 0) return;
    const int64_t tasks = N * G;
    const int64_t task_flops = 2 * Kd * std::max<int64_t>(Cg, 1) * std::max<int64_t>(HW, 1);

    auto run = [&](int64_t t, T* col, bool parallel) {
        int64_t n = t / G, grp = t % G;
        const T* xg = x + (n * C + grp * Cg) * HW;
        T* yg = y + (n * O + grp * Og) * P;
        fill_bias(yg, Og, P, bias ? bias + grp * Og : nullptr);
        if (HW == 0) return;
        // col[Kd, HW] = W_g^T @ x_g with W_g = weight[grp*Cg:(grp+1)*Cg] viewed as [Cg, Kd].
        gemm<T>(true, false, Kd, HW, Cg, T(1), w + grp * Cg * Kd, Kd, xg, HW, T(0), col, HW);
        if (parallel)
            parallel_for(Og, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, g.kh * g.kw * HW)),
                         [&](int64_t o0, int64_t o1) { col2im_channels(g, col, yg, o0, o1); });
        else col2im_channels(g, col, yg, 0, Og);
    };
    const size_t col_size = size_t(Kd * HW);
    if (tasks > 1 && task_flops < kTaskFlops) {
        parallel_for(tasks, std::max<int64_t>(1, kTaskFlops / 4 / std::max<int64_t>(task_flops, 1)),
                     [&](int64_t t0, int64_t t1) {
                         std::vector<T> col(col_size);
                         for (int64_t t = t0; t < t1; ++t) run(t, col.data(), false);
                     });
    } else {
        std::vector<T> col(col_size);
        for (int64_t t = 0; t < tasks; ++t) run(t, col.data(), true);
    }
}

void deconv_kernel(const Attrs& attrs, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    std::vector<TensorInfo> infos;
    for (const Tensor& t : in) infos.push_back(t.info);
    ConvGeom g = deconv_geom(attrs, infos);
    MNN_DISPATCH_FLOAT(in[0].dtype(), attrs.op_name,
                       deconv_typed<scalar_t>(g, in[0], in[1], g.has_bias ? in[2].data<scalar_t>() : nullptr, out[0]));
}

// ---- Conv2dBackpropFilter ------------------------------------------------------
// dW[o, c, i, j] = sum over n, oh < OH, ow < OW of
//   dy[n, o, oh, ow] * x[n, grp*Cg + c, oh*sh - pt + i*dh, ow*sw - pl + j*dw]   (x is 0 outside)
// with OH, OW taken from dy, so it serves conv2d's weight gradient and, with the
// roles of the operands swapped, conv2d_transpose's.

struct FilterGeom {
    int64_t N, C, H, W, O, OH, OW, G, kh, kw, sh, sw, dh, dw, pt, pl;
};

FilterGeom filter_geom(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    const char* name = attrs.op_name;
    const TensorInfo &x = in[0], &dy = in[1];
    MNN_CHECK_TYPE(is_float(x.dtype) && dy.dtype == x.dtype, name,
                   ": expected float input and output-gradient of one dtype, got ", info_str(x), " and ", info_str(dy));
    MNN_CHECK_VALUE(x.shape.size() == 4 && dy.shape.size() == 4, name,
                    ": input and output-gradient must be 4-d [N, C, H, W] and [N, O, OH, OW], got ", info_str(x),
                    " and ", info_str(dy));
    MNN_CHECK_VALUE(x.shape[0] == dy.shape[0], name, ": input ", info_str(x), " and output-gradient ", info_str(dy),
                    " must have the same batch size");
    FilterGeom g;
    g.N = x.shape[0]; g.C = x.shape[1]; g.H = x.shape[2]; g.W = x.shape[3];
    g.O = dy.shape[1]; g.OH = dy.shape[2]; g.OW = dy.shape[3];
    g.G = attrs.i("groups");
    MNN_CHECK_VALUE(g.G >= 1, name, ": groups must be >= 1, got ", g.G);
    MNN_CHECK_VALUE(g.C % g.G == 0 && g.O % g.G == 0, name, ": input channels ", g.C, " and output channels ", g.O,
                    " must both be divisible by groups ", g.G);
    auto k = convgeom::pair_attr(attrs, "kernel", 1), s = convgeom::pair_attr(attrs, "stride", 1),
         d = convgeom::pair_attr(attrs, "dilation", 1);
    const std::vector<int64_t>& p = attrs.ints("pads");
    MNN_CHECK_VALUE(p.size() == 2 && p[0] >= 0 && p[1] >= 0, name,
                    ": 'pads' must be 2 values [top, left], each >= 0, got ", shape_str(p));
    g.kh = k[0]; g.kw = k[1]; g.sh = s[0]; g.sw = s[1]; g.dh = d[0]; g.dw = d[1]; g.pt = p[0]; g.pl = p[1];
    return g;
}

std::vector<TensorInfo> filter_infer(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    FilterGeom g = filter_geom(attrs, in);
    return {TensorInfo{in[0].dtype, Shape{g.O, g.C / g.G, g.kh, g.kw}}};
}

// Output rows [oh0, oh1) of the unfolded input, c < Cg, rows of col ld apart:
// col[((c*kh + i)*kw + j) * ld + (oh - oh0)*OW + ow] = x[c, oh*sh - pt + i*dh, ow*sw - pl + j*dw] (0 outside).
template <typename T>
void unfold_rows(const FilterGeom& g, int64_t Cg, const T* x, const int64_t* lo, const int64_t* hi, int64_t oh0,
                 int64_t oh1, T* col, int64_t ld) {
    const int64_t OW = g.OW;
    for (int64_t c = 0; c < Cg; ++c)
        for (int64_t i = 0; i < g.kh; ++i)
            for (int64_t j = 0; j < g.kw; ++j) {
                T* row = col + ((c * g.kh + i) * g.kw + j) * ld;
                const int64_t off = j * g.dw - g.pl, a = lo[j], b = hi[j];
                for (int64_t oh = oh0; oh < oh1; ++oh) {
                    T* d = row + (oh - oh0) * OW;
                    const int64_t ih = oh * g.sh - g.pt + i * g.dh;
                    if (ih < 0 || ih >= g.H) {
                        std::fill(d, d + OW, T(0));
                        continue;
                    }
                    const T* xr = x + (c * g.H + ih) * g.W + off;  // xr[ow * sw] is inside for ow in [a, b)
                    std::fill(d, d + a, T(0));
                    for (int64_t ow = a; ow < b; ++ow) d[ow] = xr[ow * g.sw];  // (short rows: no memmove call)
                    std::fill(d + b, d + OW, T(0));
                }
            }
}

template <typename T>
void backprop_filter_typed(const FilterGeom& g, const T* x, const T* dy, T* dw) {
    const int64_t G = g.G, Cg = g.C / G, Og = g.O / G, Kd = Cg * g.kh * g.kw, P = g.OH * g.OW;
    const int64_t out_size = g.O * Kd, tasks = g.N * G;
    std::fill(dw, dw + out_size, T(0));
    if (out_size == 0 || tasks == 0 || P == 0) return;
    const convgeom::DirectConv dc{g.N, g.C, g.H, g.W, g.O, G, g.OH, g.OW, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl};
    if (convgeom::direct_conv_suits(dc))
        return convgeom::conv2d_filter_direct(dc, x, dy, dw);
    std::vector<int64_t> lo(size_t(g.kw)), hi(size_t(g.kw));
    for (int64_t j = 0; j < g.kw; ++j) valid_range(j * g.dw - g.pl, g.sw, g.W, g.OW, lo[size_t(j)], hi[size_t(j)]);
    // dW_g[Og, Kd] = sum over images of dy_g[Og, P] @ unfold(x_g)[Kd, P]^T: as one GEMM over a block of
    // images at a time (K = images * P), the unfolded block and dy_g's rows side by side, at most ~4M
    // values each; a large image alone is cut into blocks of output rows.
    const int64_t budget = int64_t(1) << 22;
    const int64_t imgs = std::max<int64_t>(1, std::min<int64_t>(g.N, budget / std::max<int64_t>(1, Kd * P)));
    const int64_t rows = imgs > 1 ? g.OH : std::max<int64_t>(1, std::min<int64_t>(g.OH, budget / std::max<int64_t>(1, Kd * g.OW)));
    std::vector<T> col(size_t(Kd * imgs * rows * g.OW)), dyt(size_t(Og * imgs * rows * g.OW));
    for (int64_t grp = 0; grp < G; ++grp)
        for (int64_t n0 = 0; n0 < g.N; n0 += imgs) {
            const int64_t m = std::min(imgs, g.N - n0);
            for (int64_t oh0 = 0; oh0 < g.OH; oh0 += rows) {
                const int64_t oh1 = std::min(g.OH, oh0 + rows), pb = (oh1 - oh0) * g.OW, K = m * pb;
                parallel_for(m, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, Kd * pb)), [&](int64_t a, int64_t b) {
                    for (int64_t q = a; q < b; ++q) {
                        const int64_t n = n0 + q;
                        unfold_rows(g, Cg, x + (n * g.C + grp * Cg) * g.H * g.W, lo.data(), hi.data(), oh0, oh1,
                                    col.data() + q * pb, K);
                        for (int64_t o = 0; o < Og; ++o) {
                            const T* src = dy + ((n * g.O + grp * Og + o) * g.OH + oh0) * g.OW;
                            std::copy(src, src + pb, dyt.data() + o * K + q * pb);
                        }
                    }
                });
                gemm<T>(false, true, Og, Kd, K, T(1), dyt.data(), K, col.data(), K, T(1), dw + grp * Og * Kd, Kd);
            }
        }
}

void backprop_filter_kernel(const Attrs& attrs, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    FilterGeom g = filter_geom(attrs, {in[0].info, in[1].info});
    MNN_DISPATCH_FLOAT(in[0].dtype(), attrs.op_name,
                       backprop_filter_typed<scalar_t>(g, in[0].data<scalar_t>(), in[1].data<scalar_t>(),
                                                       out[0].data<scalar_t>()));
}

}  // namespace

const char* epilogue_op_name(EpilogueOp::Kind k) {
    switch (k) {
        case EpilogueOp::Relu: return "relu";
        case EpilogueOp::Add: return "add";
        case EpilogueOp::Sub: return "subtract";
        case EpilogueOp::Mul: return "multiply";
        case EpilogueOp::Max: return "maximum";
        case EpilogueOp::Min: return "minimum";
    }
    return "?";
}

void conv2d_fused(const Attrs& attrs, const std::vector<Tensor>& ins, const ConvEpilogue& epi, Tensor& out) {
    std::vector<TensorInfo> infos;
    std::vector<Tensor> conv_ins(ins.begin(), ins.begin() + epi.conv_inputs);
    for (const Tensor& t : conv_ins) infos.push_back(t.info);
    const bool blocked = ins[0].ndim() == 5 || out.ndim() == 5;  // inside a channel-blocked chain (conv_blocked.h)
    if (ins[0].ndim() == 5) {  // the geometry of the NCHW input it stands for
        const Shape& s = ins[0].shape();
        infos[0].shape = {s[0], ins[1].shape()[1] * attrs.i("groups"), s[2], s[3]};
    }
    ConvGeom g = conv_geom(attrs, infos);
    MNN_CHECK_VALUE(int(epi.ops.size()) <= kMaxEpilogueOps, attrs.op_name, ": too many fused ops (internal error)");
    if (blocked) {
        const convgeom::DirectConv dc{g.im.N, g.im.C, g.im.H, g.im.W, g.O, g.groups, g.OH, g.OW, g.kh, g.kw, g.sh, g.sw,
                                      g.dh, g.dw, g.pt, g.pl};
        return convgeom::conv2d_blocked(dc, ins[0], ins[1], make_epilogue<float>(g, ins, &epi), out);
    }
    MNN_DISPATCH_FLOAT(ins[0].dtype(), attrs.op_name,
                       conv2d_typed<scalar_t>(g, ins[0], ins[1], make_epilogue<scalar_t>(g, ins, &epi), out));
}

namespace {

// conv2d's geometry for inputs that may be blocked (5-d: the NCHW input it stands for).
ConvGeom logical_geom(const Attrs& attrs, std::vector<TensorInfo> infos) {
    if (infos[0].shape.size() == 5) {
        const Shape s = infos[0].shape;
        infos[0].shape = {s[0], infos[1].shape[1] * attrs.i("groups"), s[2], s[3]};
    }
    return conv_geom(attrs, infos);
}

convgeom::DirectConv direct_of(const ConvGeom& g) {
    return {g.im.N, g.im.C, g.im.H, g.im.W, g.O, g.groups, g.OH, g.OW, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl};
}

// The depthwise convolution's input infos: the 1x1's output (NCHW), then its own weight and bias.
std::vector<TensorInfo> depthwise_infos(const ConvGeom& p, const std::vector<TensorInfo>& dins) {
    std::vector<TensorInfo> in{TensorInfo{DType::Float32, {p.im.N, p.O, p.OH, p.OW}}};
    in.insert(in.end(), dins.begin() + 1, dins.end());
    return in;
}

}  // namespace

void conv2d_expand_depthwise(const Attrs& pa, const std::vector<Tensor>& pins, const ConvEpilogue& pe,
                             const Attrs& da, const std::vector<Tensor>& dins, const ConvEpilogue& de, Tensor& y) {
    std::vector<TensorInfo> pi, di;
    for (int i = 0; i < pe.conv_inputs; ++i) pi.push_back(pins[size_t(i)].info);
    for (int i = 0; i < de.conv_inputs; ++i) di.push_back(dins[size_t(i)].info);
    const ConvGeom gp = logical_geom(pa, pi);
    const ConvGeom gd = conv_geom(da, depthwise_infos(gp, di));
    convgeom::conv2d_expand_depthwise(direct_of(gp), pins[0], pins[1], make_epilogue<float>(gp, pins, &pe),
                                      direct_of(gd), dins[1], make_epilogue<float>(gd, dins, &de), y);
}

bool conv2d_expand_depthwise_suits(const Attrs& pa, const std::vector<TensorInfo>& pins, const Attrs& da,
                                   const std::vector<TensorInfo>& dins) {
    try {
        const ConvGeom gp = conv_geom(pa, pins);
        return convgeom::expand_depthwise_suits(direct_of(gp), direct_of(conv_geom(da, depthwise_infos(gp, dins))));
    } catch (const std::exception&) {
        return false;
    }
}

convgeom::BlockedConv conv2d_blocked_kind(const Attrs& attrs, const std::vector<TensorInfo>& ins) {
    if (ins.size() < 2 || ins[0].dtype != DType::Float32 || ins[0].shape.size() != 4) return convgeom::BlockedConv::None;
    ConvGeom g;
    try {
        g = conv_geom(attrs, ins);
    } catch (const std::exception&) {
        return convgeom::BlockedConv::None;
    }
    return convgeom::blocked_conv_kind({g.im.N, g.im.C, g.im.H, g.im.W, g.O, g.groups, g.OH, g.OW, g.kh, g.kw, g.sh,
                                        g.sw, g.dh, g.dw, g.pt, g.pl});
}

void register_conv_ops() {
    register_op(OpType::Conv2d, conv2d_infer, conv2d_kernel);
    register_op(OpType::ConvTranspose2d, deconv_infer, deconv_kernel);
    register_op(OpType::Conv2dBackpropFilter, filter_infer, backprop_filter_kernel);
    register_pool_ops();
}

}  // namespace mnn
