// Movement primitives: reshape, transpose, slice, broadcast_to, concat, pad,
// tile, flip and raster itself.  Each op has a shape rule that validates
// everything, and a lowering `lower_<op>` to raster regions (ops/raster.h);
// the kernel of every op is "lower, then run the raster kernel".  All of them
// copy by element size, so they are registered half-native.
//
// Conventions (documented for users in mnn_expr/movement.py):
// - reshape: at most one -1 (inferred).  A 0 is a literal zero-size dim as in
//   NumPy when that gives a valid reshape; otherwise (MNN / ONNX convention)
//   a 0 copies the input's dim at the same position.
// - slice: begins/ends/steps per leading axis (missing axes are taken whole,
//   empty steps mean 1), clamped like Python slices; INT64_MAX / INT64_MIN
//   stand for an omitted bound.
// - pad: pads = [before0, after0, before1, after1, ...] (>= 0), modes
//   constant (value), reflect, symmetric, edge, wrap; reflect/symmetric/wrap
//   pads may exceed the dim (periodic, as NumPy); the modes other than
//   constant need a non-empty axis where they pad.
// - raster: regions = concatenated records
//     [src, ndim, src_offset, dst_offset, size[ndim], src_stride[ndim], dst_stride[ndim]]
//   with src an input index (or -1: the destination as written so far),
//   0 <= ndim <= 8, element offsets/strides (negative allowed).  Elements no
//   region writes are zero.  Every region is checked against the bounds of its
//   source and of the destination `shape`.
#include <algorithm>
#include <cstring>
#include <limits>

#include "ops/common.h"
#include "ops/raster.h"

namespace mnn {

namespace {

using Infos = std::vector<TensorInfo>;

constexpr int64_t kOmitted = std::numeric_limits<int64_t>::max();

// numel of a shape, refusing products that overflow.
int64_t checked_numel(const Shape& s, const char* op) {
    __int128 n = 1;
    for (int64_t d : s) {
        MNN_CHECK_VALUE(d >= 0, op, ": negative dimension in shape ", shape_str(s));
        n *= d;
        if (n > (__int128(1) << 62)) {
            for (int64_t e : s) if (e == 0) return 0;
            throw ValueError(fmt(op, ": shape ", shape_str(s), " has too many elements"));
        }
    }
    return int64_t(n);
}

Shape strides_of(const Shape& s) { return contiguous_strides(s); }

// ---- reshape ----------------------------------------------------------------------

bool try_reshape(const Shape& in, const std::vector<int64_t>& spec, bool zero_copies, Shape* out) {
    int64_t n = 1, infer = -1;
    for (int64_t d : in) n *= d;
    Shape s(spec.size());
    __int128 known = 1;
    for (size_t i = 0; i < spec.size(); ++i) {
        int64_t d = spec[i];
        if (d == -1) {
            if (infer >= 0) return false;
            infer = int64_t(i);
            s[i] = 1;
            continue;
        }
        if (d == 0 && zero_copies) {
            if (i >= in.size()) return false;
            d = in[i];
        }
        if (d < 0) return false;
        s[i] = d;
        known *= d;
        if (known > (__int128(1) << 62)) known = (__int128(1) << 62) + 1;
    }
    if (infer >= 0) {
        if (known == 0) return false;  // -1 next to a zero-size dim is ambiguous
        if (n % int64_t(known) != 0) return false;
        s[size_t(infer)] = n / int64_t(known);
    } else if (known != n) {
        return false;
    }
    *out = std::move(s);
    return true;
}

Infos reshape_infer(const Attrs& a, const Infos& in) {
    const auto& spec = a.ints("shape");
    Shape out;
    int minus = 0;
    for (int64_t d : spec) {
        MNN_CHECK_VALUE(d >= -1, "reshape: dimensions must be >= -1, got ", d, " in ", shape_str(spec));
        minus += d == -1;
    }
    MNN_CHECK_VALUE(minus <= 1, "reshape: at most one dimension may be -1, got ", shape_str(spec));
    if (!try_reshape(in[0].shape, spec, false, &out) && !try_reshape(in[0].shape, spec, true, &out))
        throw ValueError(fmt("reshape: cannot reshape ", info_str(in[0]), " (", in[0].numel(), " elements) into shape ",
                             shape_str(spec)));
    return {TensorInfo{in[0].dtype, out}};
}

// ---- transpose --------------------------------------------------------------------

std::vector<int> perm_of(const Attrs& a, size_t ndim) {
    const auto& p = a.ints("perm");
    MNN_CHECK_VALUE(p.size() == ndim, "transpose: perm ", shape_str(p), " must list each of the ", ndim,
                    " axes once");
    std::vector<int> out(ndim);
    std::vector<bool> seen(ndim, false);
    for (size_t i = 0; i < ndim; ++i) {
        int ax = normalize_axis(p[i], int64_t(ndim), "transpose");
        MNN_CHECK_VALUE(!seen[size_t(ax)], "transpose: perm ", shape_str(p), " repeats axis ", ax);
        seen[size_t(ax)] = true;
        out[i] = ax;
    }
    return out;
}

Infos transpose_infer(const Attrs& a, const Infos& in) {
    auto p = perm_of(a, in[0].shape.size());
    Shape s(p.size());
    for (size_t i = 0; i < p.size(); ++i) s[i] = in[0].shape[size_t(p[i])];
    return {TensorInfo{in[0].dtype, s}};
}

void lower_transpose(const Attrs& a, const Infos& in, const TensorInfo& out, std::vector<Region>& regs) {
    auto p = perm_of(a, in[0].shape.size());
    Shape st = strides_of(in[0].shape), ss(p.size());
    for (size_t i = 0; i < p.size(); ++i) ss[i] = st[size_t(p[i])];
    add_region(regs, 0, out.shape, 0, ss, 0, strides_of(out.shape));
}

// ---- slice ------------------------------------------------------------------------

struct SliceDim {
    int64_t begin, len, step;
};

std::vector<SliceDim> slice_dims(const Attrs& a, const Shape& shape) {
    const auto& b = a.ints("begins");
    const auto& e = a.ints("ends");
    const auto& st = a.ints("steps");
    size_t nd = shape.size();
    MNN_CHECK_VALUE(b.size() == e.size() && (st.empty() || st.size() == b.size()), "slice: begins ", shape_str(b),
                    ", ends ", shape_str(e), " and steps ", shape_str(st), " must have the same length");
    MNN_CHECK_VALUE(b.size() <= nd, "slice: ", b.size(), " axes given for a ", nd, "-d input of shape ", shape_str(shape));
    std::vector<SliceDim> out(nd);
    for (size_t i = 0; i < nd; ++i) {
        int64_t n = shape[i];
        if (i >= b.size()) { out[i] = {0, n, 1}; continue; }
        int64_t step = st.empty() ? 1 : st[i];
        MNN_CHECK_VALUE(step != 0, "slice: step of axis ", i, " must not be zero");
        int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? n - 1 : n;
        auto adjust = [&](int64_t v) {
            if (v < 0) { v = v < -n ? lo : v + n; if (v < lo) v = lo; }
            else if (v > hi) v = hi;
            return v;
        };
        int64_t bb = adjust(b[i]), ee = adjust(e[i]), len;
        if (step > 0) len = ee > bb ? (ee - bb - 1) / step + 1 : 0;
        else len = bb > ee ? (bb - ee - 1) / (step == std::numeric_limits<int64_t>::min() ? kOmitted : -step) + 1 : 0;
        if (len <= 1) step = 1;  // any step selects the same single element
        out[i] = {bb, len, step};
    }
    return out;
}

Infos slice_infer(const Attrs& a, const Infos& in) {
    auto d = slice_dims(a, in[0].shape);
    Shape s(d.size());
    for (size_t i = 0; i < d.size(); ++i) s[i] = d[i].len;
    return {TensorInfo{in[0].dtype, s}};
}

void lower_slice(const Attrs& a, const Infos& in, const TensorInfo& out, std::vector<Region>& regs) {
    auto d = slice_dims(a, in[0].shape);
    Shape st = strides_of(in[0].shape), ss(d.size());
    int64_t off = 0;
    for (size_t i = 0; i < d.size(); ++i) {
        if (d[i].len == 0) return;
        off += d[i].begin * st[i];
        ss[i] = d[i].step * st[i];
    }
    add_region(regs, 0, out.shape, off, ss, 0, strides_of(out.shape));
}

// ---- broadcast_to -------------------------------------------------------------------

Infos broadcast_to_infer(const Attrs& a, const Infos& in) {
    const Shape& target = a.ints("shape");
    const Shape& s = in[0].shape;
    checked_numel(target, "broadcast_to");
    bool ok = target.size() >= s.size();
    for (size_t i = 0; ok && i < s.size(); ++i) {
        int64_t d = s[s.size() - 1 - i], t = target[target.size() - 1 - i];
        ok = d == t || d == 1;
    }
    MNN_CHECK_VALUE(ok, "broadcast_to: cannot broadcast ", info_str(in[0]), " to shape ", shape_str(target),
                    " (each input dim, aligned from the right, must equal the target or be 1)");
    return {TensorInfo{in[0].dtype, target}};
}

void lower_broadcast_to(const Attrs&, const Infos& in, const TensorInfo& out, std::vector<Region>& regs) {
    add_region(regs, 0, out.shape, 0, broadcast_strides(in[0].shape, out.shape), 0, strides_of(out.shape));
}

// broadcast_like: broadcast_to with the target taken from the second input's shape.
Infos broadcast_like_infer(const Attrs&, const Infos& in) {
    const Shape& target = in[1].shape;
    const Shape& s = in[0].shape;
    bool ok = target.size() >= s.size();
    for (size_t i = 0; ok && i < s.size(); ++i) {
        int64_t d = s[s.size() - 1 - i], t = target[target.size() - 1 - i];
        ok = d == t || d == 1;
    }
    MNN_CHECK_VALUE(ok, "broadcast_like: cannot broadcast ", info_str(in[0]), " to the shape of ", info_str(in[1]),
                    " (each input dim, aligned from the right, must equal the target or be 1)");
    return {TensorInfo{in[0].dtype, target}};
}

// ---- concat -----------------------------------------------------------------------

Infos concat_infer(const Attrs& a, const Infos& in) {
    const Shape& s0 = in[0].shape;
    MNN_CHECK_VALUE(!s0.empty(), "concat: zero-dimensional inputs cannot be concatenated, got ", info_str(in[0]));
    int axis = normalize_axis(a.i("axis"), int64_t(s0.size()), "concat");
    Shape out = s0;
    for (size_t k = 1; k < in.size(); ++k) {
        MNN_CHECK_TYPE(in[k].dtype == in[0].dtype, "concat: inputs must share a dtype (the front end promotes), got ",
                       info_str(in[0]), " and ", info_str(in[k]));
        const Shape& s = in[k].shape;
        bool ok = s.size() == s0.size();
        for (size_t i = 0; ok && i < s.size(); ++i) ok = int(i) == axis || s[i] == s0[i];
        MNN_CHECK_VALUE(ok, "concat: input ", k, " of shape ", shape_str(s), " does not match input 0 of shape ",
                        shape_str(s0), " outside axis ", axis);
        out[size_t(axis)] += s[size_t(axis)];
    }
    checked_numel(out, "concat");
    return {TensorInfo{in[0].dtype, out}};
}

void lower_concat(const Attrs& a, const Infos& in, const TensorInfo& out, std::vector<Region>& regs) {
    int axis = normalize_axis(a.i("axis"), int64_t(out.shape.size()), "concat");
    Shape dst = strides_of(out.shape);
    int64_t pos = 0;
    for (size_t k = 0; k < in.size(); ++k) {
        add_region(regs, int(k), in[k].shape, 0, strides_of(in[k].shape), pos * dst[size_t(axis)], dst);
        pos += in[k].shape[size_t(axis)];
    }
}

// ---- pad ----------------------------------------------------------------------------

enum class PadMode { Constant, Reflect, Symmetric, Edge, Wrap };

PadMode pad_mode(const Attrs& a) {
    const std::string& m = a.s("mode");
    if (m == "constant") return PadMode::Constant;
    if (m == "reflect") return PadMode::Reflect;
    if (m == "symmetric") return PadMode::Symmetric;
    if (m == "edge") return PadMode::Edge;
    if (m == "wrap") return PadMode::Wrap;
    throw ValueError(fmt("pad: unknown mode '", m, "' (expected constant, reflect, symmetric, edge or wrap)"));
}

Infos pad_infer(const Attrs& a, const Infos& in) {
    const Shape& s = in[0].shape;
    const auto& p = a.ints("pads");
    PadMode mode = pad_mode(a);
    MNN_CHECK_VALUE(p.size() == 2 * s.size(), "pad: pads must hold a (before, after) pair for each of the ", s.size(),
                    " axes of ", info_str(in[0]), ", got ", p.size(), " values");
    Shape out(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        int64_t b = p[2 * i], e = p[2 * i + 1];
        MNN_CHECK_VALUE(b >= 0 && e >= 0, "pad: pads must be >= 0, got (", b, ", ", e, ") for axis ", i);
        MNN_CHECK_VALUE(mode == PadMode::Constant || s[i] > 0 || (b == 0 && e == 0), "pad: cannot pad the empty axis ",
                        i, " of ", info_str(in[0]), " in mode '", a.s("mode"), "' (only 'constant' can)");
        MNN_CHECK_VALUE(b <= (int64_t(1) << 62) - s[i] - e, "pad: pads (", b, ", ", e, ") are too large");
        out[i] = s[i] + b + e;
    }
    checked_numel(out, "pad");
    return {TensorInfo{in[0].dtype, out}};
}

// Source index (into [0, n)) of position t (relative to the start of the
// input, may be outside it) for the mirroring modes.
int64_t pad_source(PadMode m, int64_t t, int64_t n) {
    if (m == PadMode::Edge) return t < 0 ? 0 : (t >= n ? n - 1 : t);
    if (m == PadMode::Wrap) return ((t % n) + n) % n;
    if (m == PadMode::Reflect) {
        if (n == 1) return 0;
        int64_t P = 2 * (n - 1), r = ((t % P) + P) % P;
        return r < n ? r : P - r;
    }
    int64_t P = 2 * n, r = ((t % P) + P) % P;  // symmetric
    return r < n ? r : P - 1 - r;
}

// Constant mode reads the pad value from one extra source (index
// in.size(), a 1-element tensor) with zero strides; returns true when it does.
bool lower_pad(const Attrs& a, const Infos& in, const TensorInfo& out, std::vector<Region>& regs) {
    const Shape& s = in[0].shape;
    const auto& p = a.ints("pads");
    PadMode mode = pad_mode(a);
    size_t nd = s.size();
    Shape dst = strides_of(out.shape);
    int64_t interior = 0;
    for (size_t i = 0; i < nd; ++i) interior += p[2 * i] * dst[i];
    add_region(regs, 0, s, 0, strides_of(s), interior, dst);
    // Pad slabs of axis k span the whole output in axes before k and the
    // interior in axes after k; together with the interior they tile the output.
    auto slab = [&](size_t k, Shape& size, int64_t* base) {
        *base = 0;
        for (size_t i = 0; i < nd; ++i) {
            size[i] = i < k ? out.shape[i] : s[i];
            if (i > k) *base += p[2 * i] * dst[i];
        }
    };
    if (mode == PadMode::Constant) {
        bool any = false;
        int src = int(in.size());
        for (size_t k = 0; k < nd; ++k) {
            Shape size(nd);
            int64_t base;
            slab(k, size, &base);
            Shape zero(nd, 0);
            for (int side = 0; side < 2; ++side) {
                int64_t w = p[2 * k + side];
                if (!w) continue;
                size[k] = w;
                add_region(regs, src, size, 0, zero, base + (side ? p[2 * k] + s[k] : 0) * dst[k], dst);
                any = true;
            }
        }
        return any;
    }
    // Axis by axis, mirror already-written data of the destination: axes
    // before k are complete, axes after k hold only their interior.
    for (size_t k = 0; k < nd; ++k) {
        int64_t b = p[2 * k], n = s[k];
        if (!(b || p[2 * k + 1]) || n == 0) continue;
        Shape size(nd);
        int64_t base;
        slab(k, size, &base);
        Shape step = dst;
        // Cut the pad positions into runs whose source index moves by +1, -1 or 0.
        auto runs = [&](int64_t o0, int64_t o1) {
            int64_t o = o0;
            while (o < o1) {
                int64_t src0 = pad_source(mode, o - b, n), len = 1, dir = 0;
                if (o + 1 < o1) {
                    dir = pad_source(mode, o + 1 - b, n) - src0;
                    if (dir < -1 || dir > 1) dir = 0;
                    while (o + len < o1 && pad_source(mode, o + len - b, n) == src0 + dir * len) ++len;
                }
                size[k] = len;
                Shape ss = dst;
                ss[k] = dir * dst[k];
                add_region(regs, kRegionSelf, size, base + (b + src0) * dst[k], ss, base + o * dst[k], step);
                o += len;
            }
        };
        runs(0, b);
        runs(b + n, out.shape[k]);
    }
    return false;
}

// ---- tile ---------------------------------------------------------------------------

Infos tile_infer(const Attrs& a, const Infos& in) {
    const Shape& s = in[0].shape;
    const auto& r = a.ints("reps");
    MNN_CHECK_VALUE(r.size() == s.size(), "tile: reps ", shape_str(r), " must have one entry per axis of ",
                    info_str(in[0]));
    Shape out(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        MNN_CHECK_VALUE(r[i] >= 0, "tile: reps must be >= 0, got ", shape_str(r));
        __int128 d = __int128(s[i]) * r[i];
        MNN_CHECK_VALUE(d < (__int128(1) << 62), "tile: result is too large");
        out[i] = int64_t(d);
    }
    checked_numel(out, "tile");
    return {TensorInfo{in[0].dtype, out}};
}

void lower_tile(const Attrs& a, const Infos& in, const TensorInfo& out, std::vector<Region>& regs) {
    const Shape& s = in[0].shape;
    const auto& r = a.ints("reps");
    Shape st = strides_of(s), dst = strides_of(out.shape), size, ss, ds;
    for (size_t i = 0; i < s.size(); ++i) {
        size.push_back(r[i]); ss.push_back(0); ds.push_back(s[i] * dst[i]);
        size.push_back(s[i]); ss.push_back(st[i]); ds.push_back(dst[i]);
    }
    add_region(regs, 0, size, 0, ss, 0, ds);
}

// ---- flip ---------------------------------------------------------------------------

std::vector<bool> flip_axes(const Attrs& a, size_t nd) {
    std::vector<bool> f(nd, false);
    for (int64_t ax : a.ints("axes")) {
        int k = normalize_axis(ax, int64_t(nd), "flip");
        MNN_CHECK_VALUE(!f[size_t(k)], "flip: repeated axis ", ax, " in ", shape_str(a.ints("axes")));
        f[size_t(k)] = true;
    }
    return f;
}

Infos flip_infer(const Attrs& a, const Infos& in) {
    flip_axes(a, in[0].shape.size());
    return {in[0]};
}

void lower_flip(const Attrs& a, const Infos& in, const TensorInfo& out, std::vector<Region>& regs) {
    const Shape& s = in[0].shape;
    auto f = flip_axes(a, s.size());
    Shape st = strides_of(s), ss = st;
    int64_t off = 0;
    for (size_t i = 0; i < s.size(); ++i)
        if (f[i] && s[i] > 0) { off += (s[i] - 1) * st[i]; ss[i] = -st[i]; }
    add_region(regs, 0, s, off, ss, 0, st);
}

// ---- raster -------------------------------------------------------------------------

std::vector<Region> parse_regions(const Attrs& a, const Infos& in, int64_t dst_numel) {
    const auto& v = a.ints("regions");
    std::vector<Region> out;
    size_t i = 0;
    while (i < v.size()) {
        size_t idx = out.size();
        MNN_CHECK_VALUE(i + 4 <= v.size(), "raster: region ", idx, " is truncated (a record is [src, ndim, src_offset, "
                        "dst_offset, size[ndim], src_stride[ndim], dst_stride[ndim]])");
        Region r;
        int64_t src = v[i], nd = v[i + 1];
        MNN_CHECK_VALUE(src >= -1 && src < int64_t(in.size()), "raster: region ", idx, " reads input ", src, " but there are ",
                        in.size(), " inputs (-1 = the destination)");
        MNN_CHECK_VALUE(nd >= 0 && nd <= kRegionMaxDims, "raster: region ", idx, " has ", nd, " dims (expected 0 to ",
                        kRegionMaxDims, ")");
        MNN_CHECK_VALUE(i + 4 + 3 * size_t(nd) <= v.size(), "raster: region ", idx, " is truncated");
        r.src = int(src);
        r.ndim = int(nd);
        r.src_offset = v[i + 2];
        r.dst_offset = v[i + 3];
        for (int k = 0; k < r.ndim; ++k) {
            r.size[k] = v[i + 4 + size_t(k)];
            r.src_stride[k] = v[i + 4 + size_t(nd + k)];
            r.dst_stride[k] = v[i + 4 + size_t(2 * nd + k)];
        }
        check_region(r, src < 0 ? dst_numel : in[size_t(src)].numel(), dst_numel, "raster", idx);
        out.push_back(r);
        i += 4 + 3 * size_t(nd);
    }
    return out;
}

Infos raster_infer(const Attrs& a, const Infos& in) {
    for (size_t k = 1; k < in.size(); ++k)
        MNN_CHECK_TYPE(in[k].dtype == in[0].dtype, "raster: inputs must share a dtype, got ", info_str(in[0]), " and ",
                       info_str(in[k]));
    const Shape& s = a.ints("shape");
    int64_t n = checked_numel(s, "raster");
    parse_regions(a, in, n);
    return {TensorInfo{in[0].dtype, s}};
}

// ---- kernels ------------------------------------------------------------------------

Infos infos_of(const std::vector<Tensor>& ts) {
    Infos out;
    out.reserve(ts.size());
    for (const Tensor& t : ts) out.push_back(t.info);
    return out;
}

void movement_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    Infos infos = infos_of(in);
    const TensorInfo& oi = out[0].info;
    std::vector<Region> regs;
    switch (a.op) {
        case OpType::Reshape:
            add_region(regs, 0, {in[0].numel()}, 0, {1}, 0, {1});
            break;
        case OpType::Transpose: lower_transpose(a, infos, oi, regs); break;
        case OpType::Slice: lower_slice(a, infos, oi, regs); break;
        case OpType::BroadcastTo:
        case OpType::BroadcastLike: lower_broadcast_to(a, infos, oi, regs); break;
        case OpType::Concat: lower_concat(a, infos, oi, regs); break;
        case OpType::Tile: lower_tile(a, infos, oi, regs); break;
        case OpType::Flip: lower_flip(a, infos, oi, regs); break;
        case OpType::Pad:
            if (lower_pad(a, infos, oi, regs)) {
                Tensor value(oi.dtype, {1});
                fill_value(value, a.f("value"));
                std::vector<Tensor> srcs = in;
                srcs.push_back(value);
                run_raster(regs, srcs, out[0]);
                return;
            }
            break;
        case OpType::Raster:
            regs = parse_regions(a, infos, oi.numel());
            if (oi.numel()) std::memset(out[0].raw(), 0, out[0].nbytes());
            break;
        default:
            throw ValueError(fmt(a.op_name, ": not a movement op (internal error)"));
    }
    run_raster(regs, in, out[0]);
}

}  // namespace

void register_movement_ops() {
    struct { OpType op; InferFn infer; } rules[] = {
        {OpType::Reshape, reshape_infer},     {OpType::Transpose, transpose_infer}, {OpType::Slice, slice_infer},
        {OpType::BroadcastTo, broadcast_to_infer}, {OpType::BroadcastLike, broadcast_like_infer},
        {OpType::Concat, concat_infer},       {OpType::Pad, pad_infer},
        {OpType::Tile, tile_infer},           {OpType::Flip, flip_infer},           {OpType::Raster, raster_infer},
    };
    for (auto& r : rules) register_op(r.op, r.infer, movement_kernel, /*half_native=*/true);
}

}  // namespace mnn
