// Gather / scatter with tensor indices.
//
//   gather(data, indices, axis)          numpy take: out = data[:, ..., indices, ...]
//   gather_nd(data, indices)             indices (..., k): out[i] = data[indices[i, :]]
//   take_along_axis(data, indices, axis) numpy take_along_axis (non-axis dims broadcast)
//   scatter_nd(data, indices, updates, reduction)
//                                        a copy of data with out[indices[i, :]] (op)= updates[i]
//   put_along_axis(data, indices, updates, axis, reduction)
//                                        numpy put_along_axis, functional (indices and updates
//                                        broadcast against the non-axis dims of data)
//
// Indices are any integer dtype; negative ones count from the end, as NumPy.
// They are data, so the kernels check them (all of them, before writing
// anything) and throw IndexError naming the op, the index and the axis size.
// Scatters apply updates in row-major order of the index space, so with
// reduction "none" the last write to an element wins; reductions are none,
// add, mul, max and min.
#include <algorithm>
#include <cstring>

#include "core/thread_pool.h"
#include "ops/common.h"

namespace mnn {

namespace {

using Infos = std::vector<TensorInfo>;

constexpr int64_t kGrainBytes = 1 << 16;

void check_index_dtype(const TensorInfo& t, const char* op) {
    MNN_CHECK_TYPE(is_int(t.dtype), op, ": indices must be integers, got ", info_str(t));
}

// Reads element i of an integer tensor as int64.
struct IndexReader {
    const void* p;
    DType t;
    int64_t operator()(int64_t i) const {
        switch (t) {
            case DType::Int8: return static_cast<const int8_t*>(p)[i];
            case DType::UInt8: return static_cast<const uint8_t*>(p)[i];
            case DType::Int32: return static_cast<const int32_t*>(p)[i];
            default: return static_cast<const int64_t*>(p)[i];
        }
    }
};

[[noreturn]] void bad_index(const char* op, int64_t v, int64_t n, int64_t axis) {
    throw IndexError(fmt(op, ": index ", v, " is out of bounds for axis ", axis, " with size ", n));
}

// Checks every index of `t` (a flat range) against an axis of size n.
void check_all(const IndexReader& r, int64_t count, int64_t n, const char* op, int64_t axis) {
    for (int64_t i = 0; i < count; ++i) {
        int64_t v = r(i);
        if (v < -n || v >= n) bad_index(op, v, n, axis);
    }
}

inline int64_t wrap(int64_t v, int64_t n) { return v < 0 ? v + n : v; }

// Copies `bytes` bytes; one element at a time for small sizes.
inline void copy_bytes(char* d, const char* s, size_t bytes) {
    switch (bytes) {
        case 1: *d = *s; return;
        case 2: std::memcpy(d, s, 2); return;
        case 4: std::memcpy(d, s, 4); return;
        case 8: std::memcpy(d, s, 8); return;
        default: std::memcpy(d, s, bytes);
    }
}

int64_t prod(const Shape& s, size_t b, size_t e) {
    int64_t n = 1;
    for (size_t i = b; i < e; ++i) n *= s[i];
    return n;
}

// ---- gather (take) ----------------------------------------------------------------

Infos gather_infer(const Attrs& a, const Infos& in) {
    const Shape& s = in[0].shape;
    check_index_dtype(in[1], "gather");
    MNN_CHECK_VALUE(!s.empty(), "gather: data must have at least one dim, got ", info_str(in[0]));
    int axis = normalize_axis(a.i("axis"), int64_t(s.size()), "gather");
    Shape out(s.begin(), s.begin() + axis);
    out.insert(out.end(), in[1].shape.begin(), in[1].shape.end());
    out.insert(out.end(), s.begin() + axis + 1, s.end());
    return {TensorInfo{in[0].dtype, out}};
}

void gather_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    const Shape& s = in[0].shape();
    int axis = normalize_axis(a.i("axis"), int64_t(s.size()), "gather");
    int64_t n = s[size_t(axis)], outer = prod(s, 0, size_t(axis)), m = in[1].numel();
    size_t inner = size_t(prod(s, size_t(axis) + 1, s.size())) * dtype_size(in[0].dtype());
    IndexReader idx{in[1].raw(), in[1].dtype()};
    check_all(idx, m, n, "gather", axis);
    if (out[0].numel() == 0) return;
    const char* src = static_cast<const char*>(in[0].raw());
    char* dst = static_cast<char*>(out[0].raw());
    int64_t grain = std::max<int64_t>(1, kGrainBytes / int64_t(std::max<size_t>(inner, 1)));
    parallel_for(outer * m, grain, [&](int64_t b, int64_t e) {
        for (int64_t u = b; u < e; ++u) {
            int64_t o = u / m, j = u % m;
            copy_bytes(dst + size_t(u) * inner, src + size_t(o * n + wrap(idx(j), n)) * inner, inner);
        }
    });
}

// ---- gather_nd -----------------------------------------------------------------------

int64_t nd_depth(const TensorInfo& data, const TensorInfo& ind, const char* op) {
    MNN_CHECK_VALUE(!ind.shape.empty(), op, ": indices must have at least one dim (the last one indexes data), got ",
                    info_str(ind));
    int64_t k = ind.shape.back();
    MNN_CHECK_VALUE(k <= int64_t(data.shape.size()), op, ": indices ", info_str(ind), " index ", k,
                    " dims, but data ", info_str(data), " has only ", data.shape.size());
    return k;
}

Infos gather_nd_infer(const Attrs&, const Infos& in) {
    check_index_dtype(in[1], "gather_nd");
    int64_t k = nd_depth(in[0], in[1], "gather_nd");
    Shape out(in[1].shape.begin(), in[1].shape.end() - 1);
    out.insert(out.end(), in[0].shape.begin() + k, in[0].shape.end());
    return {TensorInfo{in[0].dtype, out}};
}

// Offsets (in slices of the trailing dims) of every index row, checked.
std::vector<int64_t> nd_offsets(const Tensor& data, const Tensor& ind, const char* op) {
    const Shape& s = data.shape();
    int64_t k = ind.shape().back(), rows = k ? ind.numel() / k : prod(ind.shape(), 0, ind.shape().size() - 1);
    IndexReader r{ind.raw(), ind.dtype()};
    std::vector<int64_t> off(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; ++i) {
        int64_t o = 0;
        for (int64_t j = 0; j < k; ++j) {
            int64_t n = s[size_t(j)], v = r(i * k + j);
            if (v < -n || v >= n) bad_index(op, v, n, j);
            o = o * n + wrap(v, n);
        }
        off[size_t(i)] = o;
    }
    return off;
}

void gather_nd_kernel(const Attrs&, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    auto off = nd_offsets(in[0], in[1], "gather_nd");
    int64_t k = in[1].shape().back();
    size_t inner = size_t(prod(in[0].shape(), size_t(k), in[0].shape().size())) * dtype_size(in[0].dtype());
    if (out[0].numel() == 0) return;
    const char* src = static_cast<const char*>(in[0].raw());
    char* dst = static_cast<char*>(out[0].raw());
    int64_t grain = std::max<int64_t>(1, kGrainBytes / int64_t(std::max<size_t>(inner, 1)));
    parallel_for(int64_t(off.size()), grain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) copy_bytes(dst + size_t(i) * inner, src + size_t(off[size_t(i)]) * inner, inner);
    });
}

// ---- take_along_axis / put_along_axis ------------------------------------------------

// The index space of take/put_along_axis: non-axis dims broadcast data and
// indices; the axis dim comes from indices.
Shape along_shape(const TensorInfo& data, const TensorInfo& ind, int axis, const char* op) {
    const Shape& s = data.shape;
    const Shape& t = ind.shape;
    MNN_CHECK_VALUE(t.size() == s.size(), op, ": indices ", info_str(ind), " must have as many dims as data ",
                    info_str(data));
    Shape out(s.size());
    for (size_t d = 0; d < s.size(); ++d) {
        if (int(d) == axis) { out[d] = t[d]; continue; }
        MNN_CHECK_VALUE(s[d] == t[d] || s[d] == 1 || t[d] == 1, op, ": indices ", info_str(ind), " and data ",
                        info_str(data), " do not broadcast in dim ", d);
        out[d] = s[d] == 1 ? t[d] : s[d];
    }
    return out;
}

Infos take_along_infer(const Attrs& a, const Infos& in) {
    check_index_dtype(in[1], "take_along_axis");
    MNN_CHECK_VALUE(!in[0].shape.empty(), "take_along_axis: data must have at least one dim, got ", info_str(in[0]));
    int axis = normalize_axis(a.i("axis"), int64_t(in[0].shape.size()), "take_along_axis");
    return {TensorInfo{in[0].dtype, along_shape(in[0], in[1], axis, "take_along_axis")}};
}

// Walks the index space `shape` in row-major order, tracking flat offsets into
// operands read with broadcast strides.
template <int N>
struct MultiWalker {
    const Shape& shape;
    const Shape* strides[N];
    std::vector<int64_t> idx = std::vector<int64_t>(shape.size(), 0);
    int64_t off[N] = {};
    void next() {
        for (size_t d = shape.size(); d-- > 0;) {
            for (int k = 0; k < N; ++k) off[k] += (*strides[k])[d];
            if (++idx[d] < shape[d]) return;
            for (int k = 0; k < N; ++k) off[k] -= (*strides[k])[d] * shape[d];
            idx[d] = 0;
        }
    }
};

void take_along_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    const Shape& s = in[0].shape();
    const Shape& os = out[0].shape();
    int axis = normalize_axis(a.i("axis"), int64_t(s.size()), "take_along_axis");
    IndexReader r{in[1].raw(), in[1].dtype()};
    int64_t n = s[size_t(axis)];
    check_all(r, in[1].numel(), n, "take_along_axis", axis);
    int64_t total = out[0].numel();
    if (total == 0) return;
    // Data strides with the axis removed (it comes from the index), broadcast elsewhere.
    Shape ds = broadcast_strides(s, os), is = broadcast_strides(in[1].shape(), os);
    int64_t axis_stride = contiguous_strides(s)[size_t(axis)];
    ds[size_t(axis)] = 0;
    size_t es = dtype_size(in[0].dtype());
    const char* src = static_cast<const char*>(in[0].raw());
    char* dst = static_cast<char*>(out[0].raw());
    int nd = int(os.size());
    parallel_for(total, kGrainBytes / int64_t(es), [&](int64_t b, int64_t e) {
        std::vector<int64_t> idx(static_cast<size_t>(nd));
        int64_t od = 0, oi = 0, rem = b;
        for (int d = nd - 1; d >= 0; --d) {
            idx[d] = rem % os[size_t(d)];
            rem /= os[size_t(d)];
            od += idx[d] * ds[size_t(d)];
            oi += idx[d] * is[size_t(d)];
        }
        for (int64_t u = b; u < e; ++u) {
            int64_t v = wrap(r(oi), n);
            copy_bytes(dst + size_t(u) * es, src + size_t(od + v * axis_stride) * es, es);
            for (int d = nd - 1; d >= 0; --d) {
                od += ds[size_t(d)];
                oi += is[size_t(d)];
                if (++idx[d] < os[size_t(d)]) break;
                od -= ds[size_t(d)] * os[size_t(d)];
                oi -= is[size_t(d)] * os[size_t(d)];
                idx[d] = 0;
            }
        }
    });
}

// ---- scatters ---------------------------------------------------------------------------

enum class Reduction { None, Add, Mul, Max, Min };

Reduction reduction_of(const Attrs& a) {
    const std::string& r = a.s("reduction");
    if (r == "none") return Reduction::None;
    if (r == "add") return Reduction::Add;
    if (r == "mul") return Reduction::Mul;
    if (r == "max") return Reduction::Max;
    if (r == "min") return Reduction::Min;
    throw ValueError(fmt(a.op_name, ": unknown reduction '", r, "' (expected none, add, mul, max or min)"));
}

template <typename T>
inline void combine(T* d, const T* s, int64_t n, Reduction red) {
    switch (red) {
        case Reduction::None: for (int64_t i = 0; i < n; ++i) d[i] = s[i]; break;
        case Reduction::Add:
            if constexpr (std::is_same_v<T, bool>) { for (int64_t i = 0; i < n; ++i) d[i] = d[i] || s[i]; }
            else { for (int64_t i = 0; i < n; ++i) d[i] = T(d[i] + s[i]); }
            break;
        case Reduction::Mul:
            if constexpr (std::is_same_v<T, bool>) { for (int64_t i = 0; i < n; ++i) d[i] = d[i] && s[i]; }
            else { for (int64_t i = 0; i < n; ++i) d[i] = T(d[i] * s[i]); }
            break;
        case Reduction::Max: for (int64_t i = 0; i < n; ++i) d[i] = (s[i] > d[i] || s[i] != s[i]) ? s[i] : d[i]; break;
        case Reduction::Min: for (int64_t i = 0; i < n; ++i) d[i] = (s[i] < d[i] || s[i] != s[i]) ? s[i] : d[i]; break;
    }
}

Infos scatter_nd_infer(const Attrs& a, const Infos& in) {
    check_index_dtype(in[1], "scatter_nd");
    reduction_of(a);
    MNN_CHECK_TYPE(in[2].dtype == in[0].dtype, "scatter_nd: updates ", info_str(in[2]), " must have data's dtype ",
                   dtype_name(in[0].dtype));
    int64_t k = nd_depth(in[0], in[1], "scatter_nd");
    Shape want(in[1].shape.begin(), in[1].shape.end() - 1);
    want.insert(want.end(), in[0].shape.begin() + k, in[0].shape.end());
    MNN_CHECK_VALUE(in[2].shape == want, "scatter_nd: updates ", info_str(in[2]), " must have shape ",
                    shape_str(want), " (indices.shape[:-1] + data.shape[", k, ":]) for data ", info_str(in[0]),
                    " and indices ", info_str(in[1]));
    return {in[0]};
}

void scatter_nd_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    Reduction red = reduction_of(a);
    auto off = nd_offsets(in[0], in[1], "scatter_nd");
    std::memcpy(out[0].raw(), in[0].raw(), in[0].nbytes());
    int64_t k = in[1].shape().back();
    int64_t inner = prod(in[0].shape(), size_t(k), in[0].shape().size());
    if (inner == 0) return;
    MNN_DISPATCH_COMPUTE(in[0].dtype(), "scatter_nd", {
        scalar_t* d = out[0].data<scalar_t>();
        const scalar_t* u = in[2].data<scalar_t>();
        for (size_t i = 0; i < off.size(); ++i) combine(d + off[i] * inner, u + int64_t(i) * inner, inner, red);
    });
}

Shape put_along_shape(const Attrs& a, const Infos& in, int* axis_out) {
    MNN_CHECK_VALUE(!in[0].shape.empty(), "put_along_axis: data must have at least one dim, got ", info_str(in[0]));
    int axis = normalize_axis(a.i("axis"), int64_t(in[0].shape.size()), "put_along_axis");
    if (axis_out) *axis_out = axis;
    return along_shape(in[0], in[1], axis, "put_along_axis");
}

Infos put_along_infer(const Attrs& a, const Infos& in) {
    check_index_dtype(in[1], "put_along_axis");
    reduction_of(a);
    MNN_CHECK_TYPE(in[2].dtype == in[0].dtype, "put_along_axis: updates ", info_str(in[2]), " must have data's dtype ",
                   dtype_name(in[0].dtype));
    Shape space = put_along_shape(a, in, nullptr);
    Shape b = broadcast_shapes(in[2].shape, space, "put_along_axis");
    MNN_CHECK_VALUE(b == space, "put_along_axis: updates ", info_str(in[2]), " do not broadcast to the index shape ",
                    shape_str(space));
    return {in[0]};
}

void put_along_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    Reduction red = reduction_of(a);
    int axis = 0;
    Infos infos{in[0].info, in[1].info, in[2].info};
    Shape space = put_along_shape(a, infos, &axis);
    const Shape& s = in[0].shape();
    int64_t n = s[size_t(axis)];
    IndexReader r{in[1].raw(), in[1].dtype()};
    check_all(r, in[1].numel(), n, "put_along_axis", axis);
    std::memcpy(out[0].raw(), in[0].raw(), in[0].nbytes());
    if (numel(space) == 0) return;
    Shape ds = broadcast_strides(s, space), is = broadcast_strides(in[1].shape(), space),
          us = broadcast_strides(in[2].shape(), space);
    int64_t axis_stride = contiguous_strides(s)[size_t(axis)];
    ds[size_t(axis)] = 0;
    int64_t total = numel(space);
    MNN_DISPATCH_COMPUTE(in[0].dtype(), "put_along_axis", {
        scalar_t* d = out[0].data<scalar_t>();
        const scalar_t* u = in[2].data<scalar_t>();
        MultiWalker<3> w{space, {&ds, &is, &us}};
        for (int64_t i = 0; i < total; ++i, w.next())
            combine(d + w.off[0] + wrap(r(w.off[1]), n) * axis_stride, u + w.off[2], 1, red);
    });
}

}  // namespace

void register_index_ops() {
    register_op(OpType::Gather, gather_infer, gather_kernel, /*half_native=*/true);
    register_op(OpType::GatherND, gather_nd_infer, gather_nd_kernel, /*half_native=*/true);
    register_op(OpType::GatherElements, take_along_infer, take_along_kernel, /*half_native=*/true);
    register_op(OpType::ScatterND, scatter_nd_infer, scatter_nd_kernel);
    register_op(OpType::ScatterElements, put_along_infer, put_along_kernel);
}

}  // namespace mnn
