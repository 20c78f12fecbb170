// Sorting: Sort (values and int64 indices along an axis) and TopK.
//
// Order: NaN counts as the largest value, so an ascending sort puts NaN last
// (as NumPy) and a descending sort or a largest top-k puts it first (as
// PyTorch).  Equal values keep their index order (a stable sort), and top-k
// picks the lower index first among ties.  Rows along the axis are gathered
// into (value, index) pairs, sorted with an index tie-break, and scattered
// back; rows are spread over the thread pool.
#include <algorithm>
#include <cstring>
#include <vector>
#include <type_traits>
#include <utility>

#include "core/thread_pool.h"
#include "ops/common.h"

namespace mnn {

namespace {

constexpr int64_t kGrain = 1 << 14;

// ---- order-preserving unsigned keys ----------------------------------------------------
//
// key(a) < key(b) exactly when a sorts before b ascending: NaN maps to the
// largest key, -0.0 to the key of +0.0 (they compare equal), and a descending
// order uses ~key.  Sorting keys stably (or with the index as a tie-break)
// gives the order of a stable sort.

template <typename T> struct KeyOf {
    using type = std::conditional_t<sizeof(T) == 1, uint8_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
};

template <typename T>
inline typename KeyOf<T>::type sort_key(T v) {
    using K = typename KeyOf<T>::type;
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
        if (v != v) return ~K(0);
        if (v == T(0)) v = T(0);
        K u;
        std::memcpy(&u, &v, sizeof(T));
        constexpr K sign = K(1) << (sizeof(K) * 8 - 1);
        return (u & sign) ? ~u : (u | sign);
    } else if constexpr (std::is_same_v<T, bool>) {
        return K(v);
    } else if constexpr (std::is_signed_v<T>) {
        return K(K(std::make_unsigned_t<T>(v)) ^ (K(1) << (sizeof(T) * 8 - 1)));
    } else {
        return K(v);
    }
}

// Stable LSD radix sort of (key, index) pairs, one 8-bit digit per pass; the
// histograms of all digits come from one counting pass, and digits that are the
// same in every key are skipped.  Returns the buffer holding the sorted indices.
template <typename K, typename I>
I* radix_sort(K* key, I* id, K* tkey, I* tid, int64_t n) {
    constexpr int D = int(sizeof(K));
    std::vector<int64_t> count(size_t(D) * 256, 0);
    for (int64_t j = 0; j < n; ++j) {
        K v = key[j];
        for (int d = 0; d < D; ++d) ++count[size_t(d * 256 + ((v >> (8 * d)) & 0xff))];
    }
    for (int d = 0; d < D; ++d) {
        int64_t* c = count.data() + d * 256;
        if (c[(key[0] >> (8 * d)) & 0xff] == n) continue;  // one bucket: nothing moves
        int64_t sum = 0;
        for (int v = 0; v < 256; ++v) { int64_t t = c[v]; c[v] = sum; sum += t; }
        const int shift = 8 * d;
        for (int64_t j = 0; j < n; ++j) {
            int64_t pos = c[(key[j] >> shift) & 0xff]++;
            tkey[pos] = key[j];
            tid[pos] = id[j];
        }
        std::swap(key, tkey);
        std::swap(id, tid);
    }
    return id;
}

// For every row along the axis: order its elements and write the first `k`
// (k == n for a full sort) values and indices.  I is the index type of the
// scratch buffers (uint32_t unless a row is longer than that can count).
template <typename T, typename I>
void sort_rows(const T* x, T* vals, int64_t* idx, AxisLayout L, int64_t k, bool descending) {
    using K = typename KeyOf<T>::type;
    const int64_t n = L.n, inner = L.inner, rows = L.outer * L.inner;
    if (n == 0 || k == 0 || rows == 0) return;
    const bool full = k == n;
    const int64_t cost = std::max<int64_t>(1, n * (full ? 8 : 2));
    parallel_for(rows, std::max<int64_t>(1, kGrain / cost), [&](int64_t b, int64_t e) {
        std::vector<K> key(static_cast<size_t>(n)), tkey;
        std::vector<I> id(static_cast<size_t>(n)), tid;
        std::vector<std::pair<K, I>> pairs;
        if (full && n >= 64) { tkey.resize(size_t(n)); tid.resize(size_t(n)); }
        else pairs.resize(size_t(n));
        for (int64_t row = b; row < e; ++row) {
            const int64_t o = row / inner, i = row % inner;
            const T* p = x + o * n * inner + i;
            const I* order;
            if (full && n >= 64) {
                for (int64_t j = 0; j < n; ++j) {
                    K kk = sort_key(p[j * inner]);
                    key[size_t(j)] = descending ? K(~kk) : kk;
                    id[size_t(j)] = I(j);
                }
                order = radix_sort(key.data(), id.data(), tkey.data(), tid.data(), n);
            } else {  // short rows and top-k: comparison sort with the index as tie-break
                for (int64_t j = 0; j < n; ++j) {
                    K kk = sort_key(p[j * inner]);
                    pairs[size_t(j)] = {descending ? K(~kk) : kk, I(j)};
                }
                if (full) {
                    std::sort(pairs.begin(), pairs.end());
                } else {
                    std::nth_element(pairs.begin(), pairs.begin() + (k - 1), pairs.end());
                    std::sort(pairs.begin(), pairs.begin() + k);
                }
                for (int64_t j = 0; j < k; ++j) id[size_t(j)] = pairs[size_t(j)].second;
                order = id.data();
            }
            T* qv = vals + o * k * inner + i;
            int64_t* qi = idx + o * k * inner + i;
            for (int64_t j = 0; j < k; ++j) {
                int64_t src = int64_t(order[j]);
                qv[j * inner] = p[src * inner];
                qi[j * inner] = src;
            }
        }
    });
}

template <typename T>
void sort_any(const T* x, T* vals, int64_t* idx, AxisLayout L, int64_t k, bool descending) {
    if (L.n <= int64_t(UINT32_MAX)) sort_rows<T, uint32_t>(x, vals, idx, L, k, descending);
    else sort_rows<T, int64_t>(x, vals, idx, L, k, descending);
}

std::vector<TensorInfo> sort_infer(const Attrs& a, const std::vector<TensorInfo>& in) {
    const TensorInfo& x = in[0];
    normalize_axis(a.i("axis"), int64_t(x.shape.size()), a.op_name);
    return {TensorInfo{x.dtype, x.shape}, TensorInfo{DType::Int64, x.shape}};
}

void sort_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    const Tensor& x = in[0];
    int axis = normalize_axis(a.i("axis"), x.ndim(), a.op_name);
    AxisLayout L = axis_layout(x.shape(), axis);
    bool desc = a.b("descending");
    MNN_DISPATCH_COMPUTE(x.dtype(), a.op_name,
                         sort_any<scalar_t>(x.data<scalar_t>(), out[0].data<scalar_t>(), out[1].data<int64_t>(), L,
                                             L.n, desc));
}

std::vector<TensorInfo> topk_infer(const Attrs& a, const std::vector<TensorInfo>& in) {
    const TensorInfo& x = in[0];
    int axis = normalize_axis(a.i("axis"), int64_t(x.shape.size()), a.op_name);
    int64_t k = a.i("k"), n = x.shape[size_t(axis)];
    MNN_CHECK_VALUE(k >= 0 && k <= n, a.op_name, ": k = ", k, " is out of range for axis ", a.i("axis"),
                    " of size ", n, " (input ", info_str(x), "; expected 0 <= k <= ", n, ")");
    Shape s = x.shape;
    s[size_t(axis)] = k;
    return {TensorInfo{x.dtype, s}, TensorInfo{DType::Int64, s}};
}

void topk_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    const Tensor& x = in[0];
    int axis = normalize_axis(a.i("axis"), x.ndim(), a.op_name);
    AxisLayout L = axis_layout(x.shape(), axis);
    int64_t k = a.i("k");
    if (k == 0) return;
    bool largest = a.b("largest");
    MNN_DISPATCH_COMPUTE(x.dtype(), a.op_name,
                         sort_any<scalar_t>(x.data<scalar_t>(), out[0].data<scalar_t>(), out[1].data<int64_t>(), L, k,
                                             largest));
}

}  // namespace

void register_sort_ops() {
    register_op(OpType::Sort, sort_infer, sort_kernel);
    register_op(OpType::TopK, topk_infer, topk_kernel);
}

}  // namespace mnn
