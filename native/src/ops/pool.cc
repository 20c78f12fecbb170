// Pooling: MaxPool2d (with dilation; NaN propagates; any numeric dtype) and
// AvgPool2d (count_include_pad; floats), NCHW or unbatched CHW, PyTorch's
// ceil_mode rule.  A window that covers only padding gives -inf (max; the
// lowest value for integers) or 0 / NaN (average with / without counting pads).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/thread_pool.h"
#include "ops/common.h"
#include "ops/conv_common.h"

namespace mnn {

namespace {

using convgeom::Image;

struct PoolGeom {
    Image im;
    int64_t kh, kw, sh, sw, dh = 1, dw = 1, pt, pl, pb, pr, OH, OW;
};

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

inline void valid_range(int64_t off, int64_t s, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
    lo = std::min<int64_t>(out, std::max<int64_t>(0, ceil_div(-off, s)));
    hi = std::max<int64_t>(lo, std::min<int64_t>(out, ceil_div(in - off, s)));
}

PoolGeom pool_geom(const Attrs& attrs, const TensorInfo& x, bool dilated) {
    const char* name = attrs.op_name;
    PoolGeom g;
    g.im = convgeom::image_of(name, x);
    auto k = convgeom::pair_attr(attrs, "kernel", 1), s = convgeom::pair_attr(attrs, "stride", 1);
    auto p = convgeom::pads_attr(attrs);
    g.kh = k[0]; g.kw = k[1]; g.sh = s[0]; g.sw = s[1];
    g.pt = p[0]; g.pl = p[1]; g.pb = p[2]; g.pr = p[3];
    if (dilated) {
        auto d = convgeom::pair_attr(attrs, "dilation", 1);
        g.dh = d[0];
        g.dw = d[1];
    }
    int64_t eh = g.dh * (g.kh - 1) + 1, ew = g.dw * (g.kw - 1) + 1;
    MNN_CHECK_VALUE(g.pt < eh && g.pb < eh && g.pl < ew && g.pr < ew, name, ": pads ", shape_str(attrs.ints("pads")),
                    " must be smaller than the kernel extent ", shape_str({eh, ew}));
    bool ceil_mode = attrs.b("ceil_mode");
    g.OH = convgeom::window_out(name, "height", g.im.H, g.kh, g.sh, g.pt, g.pb, g.dh, ceil_mode);
    g.OW = convgeom::window_out(name, "width", g.im.W, g.kw, g.sw, g.pl, g.pr, g.dw, ceil_mode);
    return g;
}

std::vector<TensorInfo> maxpool_infer(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    MNN_CHECK_TYPE(in[0].dtype != DType::Bool, attrs.op_name, ": expected a numeric input, got ", info_str(in[0]));
    PoolGeom g = pool_geom(attrs, in[0], true);
    return {TensorInfo{in[0].dtype, convgeom::image_shape(g.im, g.im.C, g.OH, g.OW)}};
}

std::vector<TensorInfo> avgpool_infer(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    MNN_CHECK_TYPE(is_float(in[0].dtype), attrs.op_name, ": expected a float input, got ", info_str(in[0]));
    PoolGeom g = pool_geom(attrs, in[0], false);
    return {TensorInfo{in[0].dtype, convgeom::image_shape(g.im, g.im.C, g.OH, g.OW)}};
}

// Column ranges per kernel column j: output columns whose input column is inside.
struct ColRanges {
    std::vector<int64_t> lo, hi;
    ColRanges(const PoolGeom& g) : lo(size_t(g.kw)), hi(size_t(g.kw)) {
        for (int64_t j = 0; j < g.kw; ++j) valid_range(j * g.dw - g.pl, g.sw, g.im.W, g.OW, lo[j], hi[j]);
    }
};

inline int64_t plane_grain(const PoolGeom& g) {
    return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, g.OH * g.OW * g.kh * g.kw));
}

template <typename T>
void maxpool_typed(const PoolGeom& g, const T* x, T* y) {
    const int64_t H = g.im.H, W = g.im.W, OH = g.OH, OW = g.OW, planes = g.im.N * g.im.C;
    const T init = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                         : std::numeric_limits<T>::lowest();
    ColRanges cr(g);
    parallel_for(planes, plane_grain(g), [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            const T* xp = x + p * H * W;
            T* yp = y + p * OH * OW;
            std::fill(yp, yp + OH * OW, init);
            for (int64_t oh = 0; oh < OH; ++oh) {
                T* yrow = yp + oh * OW;
                for (int64_t i = 0; i < g.kh; ++i) {
                    int64_t ih = oh * g.sh - g.pt + i * g.dh;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t j = 0; j < g.kw; ++j) {
                        const T* xrow = xp + ih * W + j * g.dw - g.pl;
                        const int64_t lo = cr.lo[j], hi = cr.hi[j];
                        if constexpr (std::is_floating_point_v<T>) {  // NaN wins, as NumPy / PyTorch
                            for (int64_t ow = lo; ow < hi; ++ow) {
                                T v = xrow[ow * g.sw];
                                yrow[ow] = (v > yrow[ow] || v != v) ? v : yrow[ow];
                            }
                        } else {
                            for (int64_t ow = lo; ow < hi; ++ow) yrow[ow] = std::max(yrow[ow], xrow[ow * g.sw]);
                        }
                    }
                }
            }
        }
    });
}

template <typename T>
void avgpool_typed(const PoolGeom& g, bool count_include_pad, const T* x, T* y) {
    const int64_t H = g.im.H, W = g.im.W, OH = g.OH, OW = g.OW, planes = g.im.N * g.im.C;
    ColRanges cr(g);
    // Divisor per output column / row (PyTorch: the window clipped to the
    // padded input when counting pads, to the input otherwise).
    auto counts = [&](int64_t out, int64_t s, int64_t pad0, int64_t pad1, int64_t k, int64_t in) {
        std::vector<int64_t> c(static_cast<size_t>(out));
        for (int64_t o = 0; o < out; ++o) {
            int64_t start = o * s - pad0, end = std::min(start + k, in + pad1);
            c[size_t(o)] = count_include_pad ? end - start : std::min(end, in) - std::max<int64_t>(start, 0);
        }
        return c;
    };
    std::vector<int64_t> ch = counts(OH, g.sh, g.pt, g.pb, g.kh, H), cw = counts(OW, g.sw, g.pl, g.pr, g.kw, W);
    parallel_for(planes, plane_grain(g), [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            const T* xp = x + p * H * W;
            T* yp = y + p * OH * OW;
            std::fill(yp, yp + OH * OW, T(0));
            for (int64_t oh = 0; oh < OH; ++oh) {
                T* yrow = yp + oh * OW;
                for (int64_t i = 0; i < g.kh; ++i) {
                    int64_t ih = oh * g.sh - g.pt + i;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t j = 0; j < g.kw; ++j) {
                        const T* xrow = xp + ih * W + j - g.pl;
                        if (g.sw == 1)
                            for (int64_t ow = cr.lo[j]; ow < cr.hi[j]; ++ow) yrow[ow] += xrow[ow];
                        else
                            for (int64_t ow = cr.lo[j]; ow < cr.hi[j]; ++ow) yrow[ow] += xrow[ow * g.sw];
                    }
                }
                for (int64_t ow = 0; ow < OW; ++ow) yrow[ow] /= T(ch[size_t(oh)] * cw[size_t(ow)]);
            }
        }
    });
}

void maxpool_kernel(const Attrs& attrs, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    PoolGeom g = pool_geom(attrs, in[0].info, true);
    if (out[0].numel() == 0) return;
    MNN_DISPATCH_COMPUTE(in[0].dtype(), attrs.op_name,
                         if constexpr (!std::is_same_v<scalar_t, bool>)
                             maxpool_typed<scalar_t>(g, in[0].data<scalar_t>(), out[0].data<scalar_t>()));
}

void avgpool_kernel(const Attrs& attrs, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    PoolGeom g = pool_geom(attrs, in[0].info, false);
    if (out[0].numel() == 0) return;
    bool cip = attrs.b("count_include_pad");
    MNN_DISPATCH_FLOAT(in[0].dtype(), attrs.op_name,
                       avgpool_typed<scalar_t>(g, cip, in[0].data<scalar_t>(), out[0].data<scalar_t>()));
}

}  // namespace

void register_pool_ops() {
    register_op(OpType::MaxPool2d, maxpool_infer, maxpool_kernel);
    register_op(OpType::AvgPool2d, avgpool_infer, avgpool_kernel);
}

}  // namespace mnn
