// Pooling: MaxPool2d (with dilation; NaN propagates; any numeric dtype) and
// AvgPool2d (count_include_pad; floats), NCHW or unbatched CHW, PyTorch's
// ceil_mode rule.  A window that covers only padding gives -inf (max; the
// lowest value for integers) or 0 / NaN (average with / without counting pads).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "ops/common.h"
#include "ops/conv_common.h"
#include "ops/isa_variants.h"
#include "ops/simd_span.h"

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

// ---- float max pooling, separable ------------------------------------------------------------------
// Per plane: every input row, padded with -inf into a row buffer, gives the max over the kernel's
// columns for every output column; then the max over the kernel's rows.  The generic loop's
// update (NaN wins; -inf padding never does, as skipping the tap), on GCC vectors of L lanes
// (rows are rounded up to L; the extra columns are computed and dropped; stride 2 takes the even
// lanes of two vectors), compiled per ISA: 6 instead of 9 compares per output for 3x3.  (Written
// with the scalar update's `||`, GCC kept the loops scalar: ResNet-18's max pool took 0.33 ms.)

thread_local simd::Scratch t_pool_rows;

template <typename T>
MNN_ALWAYS_INLINE T max_step(T m, T v) {
    return (v > m || v != v) ? v : m;
}

struct MaxPoolJob {
    int64_t H, W, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl;
    int64_t planes, bands;  // items: bands of output rows x planes
};

// max_step over vectors of L lanes (GCC vector types: the scalar form's `||` kept the loops scalar).
template <typename T, int L>
struct PoolVec {
    typedef T type __attribute__((vector_size(L * sizeof(T))));
};

template <typename V>
MNN_ALWAYS_INLINE V vmax_step(V m, V v) {
    m = v != v ? v : m;   // a NaN v wins
    return v > m ? v : m;  // (a NaN m stays: v > NaN is false)
}

template <typename V, typename T>
MNN_ALWAYS_INLINE V vload_pool(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}

template <typename V, typename T>
MNN_ALWAYS_INLINE void vstore_pool(T* p, V v) {
    std::memcpy(p, &v, sizeof(V));
}

// The even lanes of the 2L values a, b (stride-2 windows).
template <typename V, size_t... I>
MNN_ALWAYS_INLINE V even_lanes(V a, V b, std::index_sequence<I...>) {
    return __builtin_shufflevector(a, b, (2 * I)...);
}

// The window's column tap at v for an output vector: L values sw apart (SW: sw when it is 1 or 2,
// else 0; a compile-time case, or GCC kept the general gather beside the others).
template <typename V, typename T, int L, int SW>
MNN_ALWAYS_INLINE V pool_tap(const T* v, int64_t sw) {
    if constexpr (SW == 1) return vload_pool<V>(v);
    if constexpr (SW == 2) return even_lanes(vload_pool<V>(v), vload_pool<V>(v + L), std::make_index_sequence<L>());
    V s;
    for (int l = 0; l < L; ++l) s[l] = v[l * sw];
    return s;
}

// Four output vectors from o of one padded input row: the max over the window's columns.  (Four
// named accumulators: as an array indexed in loops GCC kept them on the stack.)
template <typename V, typename T, int L, int SW>
MNN_ALWAYS_INLINE void pool_cols4(const MaxPoolJob& g, const T* prow, int64_t o, V init, T* out) {
    V m0 = init, m1 = init, m2 = init, m3 = init;
    for (int64_t j = 0; j < g.kw; ++j) {
        const T* v = prow + j * g.dw + o * g.sw;
        m0 = vmax_step(m0, pool_tap<V, T, L, SW>(v, g.sw));
        m1 = vmax_step(m1, pool_tap<V, T, L, SW>(v + L * g.sw, g.sw));
        m2 = vmax_step(m2, pool_tap<V, T, L, SW>(v + 2 * L * g.sw, g.sw));
        m3 = vmax_step(m3, pool_tap<V, T, L, SW>(v + 3 * L * g.sw, g.sw));
    }
    vstore_pool(out, m0);
    vstore_pool(out + L, m1);
    vstore_pool(out + 2 * L, m2);
    vstore_pool(out + 3 * L, m3);
}

template <typename V, typename T, int L, int SW>
MNN_ALWAYS_INLINE void pool_cols1(const MaxPoolJob& g, const T* prow, int64_t o, V init, T* out) {
    V m = init;
    for (int64_t j = 0; j < g.kw; ++j) m = vmax_step(m, pool_tap<V, T, L, SW>(prow + j * g.dw + o * g.sw, g.sw));
    vstore_pool(out, m);
}

// The same from o of output row oh: the max over the window's rows (in the image) of column maxima.
template <typename V, typename T, int L>
MNN_ALWAYS_INLINE void pool_rows4(const MaxPoolJob& g, const T* rows, int64_t OWv, int64_t oh, int64_t o, V init,
                                  T* out) {
    V m0 = init, m1 = init, m2 = init, m3 = init;
    for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = oh * g.sh - g.pt + i * g.dh;
        if (ih < 0 || ih >= g.H) continue;
        const T* v = rows + ih * OWv + o;
        m0 = vmax_step(m0, vload_pool<V>(v));
        m1 = vmax_step(m1, vload_pool<V>(v + L));
        m2 = vmax_step(m2, vload_pool<V>(v + 2 * L));
        m3 = vmax_step(m3, vload_pool<V>(v + 3 * L));
    }
    vstore_pool(out, m0);
    vstore_pool(out + L, m1);
    vstore_pool(out + 2 * L, m2);
    vstore_pool(out + 3 * L, m3);
}

template <typename V, typename T, int L>
MNN_ALWAYS_INLINE void pool_rows1(const MaxPoolJob& g, const T* rows, int64_t OWv, int64_t oh, int64_t o, V init,
                                  T* out) {
    V m = init;
    for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = oh * g.sh - g.pt + i * g.dh;
        if (ih >= 0 && ih < g.H) m = vmax_step(m, vload_pool<V>(rows + ih * OWv + o));
    }
    vstore_pool(out, m);
}

// Items t in [t0, t1): output rows [band * OH / bands, (band + 1) * OH / bands) of plane p, with
// t = band * planes + p.
template <typename T, int L>
MNN_ALWAYS_INLINE void maxpool_rows(const MaxPoolJob& g, const T* x, T* y, int64_t t0, int64_t t1) {
    using V = typename PoolVec<T, L>::type;
    const T ninf = -std::numeric_limits<T>::infinity();
    const int64_t OWv = (g.OW + L - 1) / L * L;
    // Two padded rows: input column c at c + pl (one spare vector for stride-2 pairs).  Row ih + 1
    // is copied in before row ih is read: loads that straddle stores still in flight could not
    // take their values from them and waited for them to reach the cache.
    const int64_t Wp = ((OWv - 1) * g.sw + (g.kw - 1) * g.dw + 1 + L + L - 1) / L * L;
    T* prow = t_pool_rows.get<T>(size_t(2 * Wp + (g.H + 1) * OWv));
    T* rows = prow + 2 * Wp;
    T* orow = rows + g.H * OWv;
    const int64_t c0 = std::min<int64_t>(g.pl, Wp), c1 = std::min<int64_t>(g.pl + g.W, Wp);
    V vninf;
    for (int l = 0; l < L; ++l) vninf[l] = ninf;
    // (the padding columns never change: each input row is copied over [c0, c1) only)
    for (T* b : {prow, prow + Wp}) {
        for (int64_t c = 0; c < c0; ++c) b[c] = ninf;
        for (int64_t c = c1; c < Wp; ++c) b[c] = ninf;
    }
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t p = t % g.planes, band = t / g.planes;
        const int64_t oh0 = band * g.OH / g.bands, oh1 = (band + 1) * g.OH / g.bands;
        if (oh0 >= oh1) continue;
        const T* xp = x + p * g.H * g.W;
        const int64_t ih0 = std::max<int64_t>(0, oh0 * g.sh - g.pt);
        const int64_t ih1 = std::min(g.H, (oh1 - 1) * g.sh - g.pt + (g.kh - 1) * g.dh + 1);
        // Both passes take four output vectors at a time: each update waits on the one before (a
        // compare and a select), so one vector alone would leave the core idle.
        if (ih0 < ih1) simd::copy<T, L>(prow + ih0 % 2 * Wp + c0, xp + ih0 * g.W, c1 - c0);
        for (int64_t ih = ih0; ih < ih1; ++ih) {
            if (ih + 1 < ih1) simd::copy<T, L>(prow + (ih + 1) % 2 * Wp + c0, xp + (ih + 1) * g.W, c1 - c0);
            const T* pr = prow + ih % 2 * Wp;
            T* __restrict r = rows + ih * OWv;
            int64_t o = 0;
            if (g.sw == 2) {
                for (; o + 4 * L <= OWv; o += 4 * L) pool_cols4<V, T, L, 2>(g, pr, o, vninf, r + o);
                for (; o < OWv; o += L) pool_cols1<V, T, L, 2>(g, pr, o, vninf, r + o);
            } else if (g.sw == 1) {
                for (; o + 4 * L <= OWv; o += 4 * L) pool_cols4<V, T, L, 1>(g, pr, o, vninf, r + o);
                for (; o < OWv; o += L) pool_cols1<V, T, L, 1>(g, pr, o, vninf, r + o);
            } else {
                for (; o < OWv; o += L) pool_cols1<V, T, L, 0>(g, pr, o, vninf, r + o);
            }
        }
        T* yp = y + p * g.OH * g.OW;
        for (int64_t oh = oh0; oh < oh1; ++oh) {
            int64_t o = 0;
            for (; o + 4 * L <= OWv; o += 4 * L) pool_rows4<V, T, L>(g, rows, OWv, oh, o, vninf, orow + o);
            for (; o < OWv; o += L) pool_rows1<V, T, L>(g, rows, OWv, oh, o, vninf, orow + o);
            simd::copy<T, L>(yp + oh * g.OW, orow, g.OW);
        }
    }
}

#define MNN_MAXPOOL_F32(L) maxpool_rows<float, L>(g, x, y, t0, t1)
#define MNN_MAXPOOL_F64(L) maxpool_rows<double, L>(g, x, y, t0, t1)
MNN_ISA_VARIANTS_LANES(maxpool_rows_f32, (const MaxPoolJob& g, const float* x, float* y, int64_t t0, int64_t t1),
                       MNN_MAXPOOL_F32, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(maxpool_rows_f64, (const MaxPoolJob& g, const double* x, double* y, int64_t t0, int64_t t1),
                       MNN_MAXPOOL_F64, 8, 4, 2)
inline auto maxpool_rows_for(CpuLevel level, float) { return maxpool_rows_f32_for(level); }
inline auto maxpool_rows_for(CpuLevel level, double) { return maxpool_rows_f64_for(level); }

template <typename T>
void maxpool_float(const PoolGeom& g, const T* x, T* y) {
    // Large planes go to the threads by bands of rows (thread t takes band t of every plane:
    // the rows the convolution before wrote on its core, when that split its output by rows, as
    // ResNet's stem does); small ones by whole planes.
    const int64_t planes = g.im.N * g.im.C, threads = get_thread_number();
    const bool banded = threads > 1 && g.OH >= 4 * threads && g.OH * g.OW >= 1024;
    const MaxPoolJob job{g.im.H, g.im.W, g.OH, g.OW, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl,
                         planes, banded ? threads : 1};
    const auto run = maxpool_rows_for(active_level(), T());
    if (banded) parallel_for_ranges(planes * threads, [&](int64_t t0, int64_t t1) { run(job, x, y, t0, t1); });
    else parallel_for(planes, plane_grain(g), [&](int64_t t0, int64_t t1) { run(job, x, y, t0, t1); });
}

template <typename T>
void maxpool_typed(const PoolGeom& g, const T* x, T* y) {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) return maxpool_float(g, x, y);
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

// ---- MaxPool2dGrad: dx of max_pool2d(x) given the output's cotangent dy ----------
// Each window sends its cotangent to its first maximum (taps in row-major order,
// padding excluded, the first NaN wins: PyTorch's and the composite rule's
// choice); windows that cover only padding send nothing.

std::vector<TensorInfo> maxpool_grad_infer(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    const TensorInfo &x = in[0], &dy = in[1];
    MNN_CHECK_TYPE(is_float(x.dtype) && dy.dtype == x.dtype, attrs.op_name,
                   ": expected float input and output-gradient of one dtype, got ", info_str(x), " and ", info_str(dy));
    PoolGeom g = pool_geom(attrs, x, true);
    MNN_CHECK_VALUE(g.im.H * g.im.W <= INT32_MAX, attrs.op_name, ": planes of more than 2^31 - 1 elements are not ",
                    "supported, got input ", info_str(x));
    Shape want = convgeom::image_shape(g.im, g.im.C, g.OH, g.OW);
    MNN_CHECK_VALUE(dy.shape == want, attrs.op_name, ": output-gradient ", info_str(dy), " must have max_pool2d's ",
                    "output shape ", shape_str(want), " for input ", info_str(x));
    return {x};
}

// One tap over output columns [lo, hi) of a row: a window takes the tap's value
// (at x offset off + ow * sw) when it has none yet, when the value is larger,
// or when it is the first NaN.  Branch-free: which tap wins is data-dependent.
template <typename T>
MNN_ALWAYS_INLINE void argmax_tap(const T* __restrict x, int64_t off, int64_t sw, int64_t lo, int64_t hi,
                                  T* __restrict bv, int32_t* __restrict bi) {
    for (int64_t ow = lo; ow < hi; ++ow) {
        const int32_t at = int32_t(off + ow * sw);
        const T v = x[at], b = bv[ow];
        const int32_t cur = bi[ow];
        const bool take = (cur < 0) | (v > b) | ((v != v) & (b == b));
        bv[ow] = take ? v : b;
        bi[ow] = take ? at : cur;
    }
}

MNN_ISA_VARIANTS(argmax_tap_f32, (const float* x, int64_t off, int64_t sw, int64_t lo, int64_t hi, float* bv,
                                  int32_t* bi),
                 argmax_tap(x, off, sw, lo, hi, bv, bi))
MNN_ISA_VARIANTS(argmax_tap_f64, (const double* x, int64_t off, int64_t sw, int64_t lo, int64_t hi, double* bv,
                                  int32_t* bi),
                 argmax_tap(x, off, sw, lo, hi, bv, bi))
inline auto argmax_tap_for(CpuLevel level, float) { return argmax_tap_f32_for(level); }
inline auto argmax_tap_for(CpuLevel level, double) { return argmax_tap_f64_for(level); }

// Windows that tile the input without overlap or padding (stride = kernel,
// no dilation; the usual 2x2 / 2 of classifiers): each window writes its whole
// patch of dx, the cotangent at its first maximum and 0 elsewhere, so there is
// no scatter and no separate zero fill of the covered area.
// float32 values as int32 keys with the same order (NaN above everything, -0 = +0),
// so the per-window first-maximum search is integer compares and selects,
// which compilers vectorise (float compares with NaN semantics they branch on).
MNN_ALWAYS_INLINE int32_t order_key(float v) {  // bit operations only: no branch, no select
    int32_t b;
    std::memcpy(&b, &v, 4);
    const int32_t s = b >> 31, mag = b & 0x7fffffff;
    const int32_t key = (mag ^ s) - s;  // -mag for negatives; -0 and +0 both 0
    const int32_t nan = -int32_t(mag > 0x7f800000);
    return (key & ~nan) | (0x7fffffff & nan);
}

template <int KH, int KW>
MNN_ALWAYS_INLINE void tiled_row(const float* __restrict x, const float* __restrict g, float* __restrict d, int64_t W,
                                 int64_t OW) {
    for (int64_t ow = 0; ow < OW; ++ow) {
        int32_t k[KH * KW];
        for (int i = 0; i < KH; ++i)
            for (int j = 0; j < KW; ++j) k[i * KW + j] = order_key(x[i * W + ow * KW + j]);
        int32_t m = k[0];
        for (int t = 1; t < KH * KW; ++t) m = std::max(m, k[t]);
        int32_t gbits, found = 0;
        std::memcpy(&gbits, g + ow, 4);
        for (int t = 0; t < KH * KW; ++t) {  // the first tap equal to the maximum takes the cotangent
            const int32_t hit = -int32_t(k[t] == m) & ~found;
            found |= hit;
            const int32_t out = gbits & hit;
            std::memcpy(d + (t / KW) * W + ow * KW + t % KW, &out, 4);
        }
    }
}

template <typename T>
MNN_ALWAYS_INLINE void tiled_row_any(const T* x, const T* g, T* d, int64_t W, int64_t OW, int64_t kh, int64_t kw) {
    if constexpr (std::is_same_v<T, float>) {
        if (kh == 2 && kw == 2) return tiled_row<2, 2>(x, g, d, W, OW);
        if (kh == 3 && kw == 3) return tiled_row<3, 3>(x, g, d, W, OW);
    }
    for (int64_t ow = 0; ow < OW; ++ow) {  // other sizes and types: the same, with run-time loops
        const T* xw = x + ow * kw;
        T best = xw[0];
        int64_t k = 0;
        for (int64_t i = 0; i < kh; ++i)
            for (int64_t j = 0; j < kw; ++j) {
                const T v = xw[i * W + j];
                if (v > best || (v != v && best == best)) { best = v; k = i * kw + j; }
            }
        for (int64_t i = 0; i < kh; ++i)
            for (int64_t j = 0; j < kw; ++j) d[i * W + ow * kw + j] = (k == i * kw + j) ? g[ow] : T(0);
    }
}

MNN_ISA_VARIANTS(tiled_row_f32, (const float* x, const float* g, float* d, int64_t W, int64_t OW, int64_t kh,
                                 int64_t kw),
                 tiled_row_any(x, g, d, W, OW, kh, kw))
MNN_ISA_VARIANTS(tiled_row_f64, (const double* x, const double* g, double* d, int64_t W, int64_t OW, int64_t kh,
                                 int64_t kw),
                 tiled_row_any(x, g, d, W, OW, kh, kw))
inline auto tiled_row_for(CpuLevel level, float) { return tiled_row_f32_for(level); }
inline auto tiled_row_for(CpuLevel level, double) { return tiled_row_f64_for(level); }

template <typename T>
void maxpool_grad_tiled(const PoolGeom& g, const T* x, const T* dy, T* dx) {
    const int64_t H = g.im.H, W = g.im.W, OH = g.OH, OW = g.OW, planes = g.im.N * g.im.C;
    const auto row = tiled_row_for(active_level(), T());
    parallel_for(planes, plane_grain(g), [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            const T* xp = x + p * H * W;
            T* dp = dx + p * H * W;
            for (int64_t oh = 0; oh < OH; ++oh) {
                T* drow = dp + oh * g.kh * W;
                row(xp + oh * g.kh * W, dy + (p * OH + oh) * OW, drow, W, OW, g.kh, g.kw);
                for (int64_t i = 0; i < g.kh; ++i)  // columns right of the last window
                    std::fill(drow + i * W + OW * g.kw, drow + (i + 1) * W, T(0));
            }
            std::fill(dp + OH * g.kh * W, dp + H * W, T(0));  // rows below the last window
        }
    });
}

// Per output row, the taps run in window order over all the row's windows at
// once (as the forward pass), keeping each window's best value and position
// in the plane (int32: the shape rule bounds a plane); then each window's
// cotangent is added at its position.
template <typename T>
void maxpool_grad_typed(const PoolGeom& g, const T* x, const T* dy, T* dx) {
    const int64_t H = g.im.H, W = g.im.W, OH = g.OH, OW = g.OW, planes = g.im.N * g.im.C;
    if (g.sh == g.kh && g.sw == g.kw && g.dh == 1 && g.dw == 1 && g.pt == 0 && g.pl == 0 && OH * g.kh <= H &&
        OW * g.kw <= W)
        return maxpool_grad_tiled(g, x, dy, dx);
    ColRanges cr(g);
    const auto tap = argmax_tap_for(active_level(), T());
    parallel_for(planes, plane_grain(g), [&](int64_t p0, int64_t p1) {
        std::vector<T> best(static_cast<size_t>(OW));
        std::vector<int32_t> pos(static_cast<size_t>(OW));
        for (int64_t p = p0; p < p1; ++p) {
            const T* xp = x + p * H * W;
            const T* gp = dy + p * OH * OW;
            T* dp = dx + p * H * W;
            std::fill(dp, dp + H * W, T(0));
            for (int64_t oh = 0; oh < OH; ++oh) {
                std::fill(pos.begin(), pos.end(), int32_t(-1));
                for (int64_t i = 0; i < g.kh; ++i) {
                    const int64_t ih = oh * g.sh - g.pt + i * g.dh;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t j = 0; j < g.kw; ++j)
                        tap(xp, ih * W + j * g.dw - g.pl, g.sw, cr.lo[j], cr.hi[j], best.data(), pos.data());
                }
                const T* grow = gp + oh * OW;
                for (int64_t ow = 0; ow < OW; ++ow)
                    if (pos[ow] >= 0) dp[pos[ow]] += grow[ow];
            }
        }
    });
}

void maxpool_grad_kernel(const Attrs& attrs, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    PoolGeom g = pool_geom(attrs, in[0].info, true);
    if (out[0].numel() == 0) return;
    MNN_DISPATCH_FLOAT(in[0].dtype(), attrs.op_name,
                       maxpool_grad_typed<scalar_t>(g, in[0].data<scalar_t>(), in[1].data<scalar_t>(),
                                                    out[0].data<scalar_t>()));
}

}  // namespace

void register_pool_ops() {
    register_op(OpType::MaxPool2d, maxpool_infer, maxpool_kernel);
    register_op(OpType::AvgPool2d, avgpool_infer, avgpool_kernel);
    register_op(OpType::MaxPool2dGrad, maxpool_grad_infer, maxpool_grad_kernel);
}

}  // namespace mnn
