// Row normalisations as single primitives: softmax and log-softmax along one
// axis (MNN's Softmax), and layer norm over the trailing dims (MNN's LayerNorm).
//
// Softmax and log-softmax (MNN's Softmax):
// one pass for the row maximum, one for exp and its sum, one to scale, on a
// row held in a small buffer, instead of the five full-size passes of the
// composite (max, subtract, exp, sum, divide).  Float32 rows use the vector
// exp (ops/vmath.h).  A row whose maximum is not finite subtracts 0 (so an
// all -inf row gives NaN, as the composite and numpy do).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/thread_pool.h"
#include "ops/common.h"
#include "ops/vmath.h"

namespace mnn {

namespace {

std::vector<TensorInfo> softmax_infer(const Attrs& a, const std::vector<TensorInfo>& in) {
    const TensorInfo& x = in[0];
    MNN_CHECK_TYPE(is_float(x.dtype), a.op_name, ": expected a float input, got ", info_str(x));
    MNN_CHECK_VALUE(!x.shape.empty(), a.op_name, ": expected at least 1 dimension, got ", info_str(x));
    normalize_axis(a.i("axis"), int64_t(x.shape.size()), a.op_name);
    return {x};
}

template <typename T>
void exp_row(T* v, int64_t n) {
    if constexpr (std::is_same_v<T, float>) vmath::table().exp(v, v, n);
    else for (int64_t i = 0; i < n; ++i) v[i] = std::exp(v[i]);
}

// Sum with independent partial sums (vectorisable; a single accumulator would
// serialise the adds), combined in double.
template <typename T>
double row_sum(const T* v, int64_t n) {
    constexpr int P = 16;
    T part[P] = {};
    int64_t i = 0;
    for (; i + P <= n; i += P)
        for (int p = 0; p < P; ++p) part[p] += v[i + p];
    double s = 0;
    for (int p = 0; p < P; ++p) s += double(part[p]);
    for (; i < n; ++i) s += double(v[i]);
    return s;
}

// The maximum, with independent partial maxima (vectorisable).  A NaN is skipped
// here; it reaches the sum, which makes the whole row NaN.
template <typename T>
T row_max(const T* v, int64_t n) {
    constexpr int P = 16;
    T part[P];
    for (int p = 0; p < P; ++p) part[p] = -std::numeric_limits<T>::infinity();
    int64_t i = 0;
    for (; i + P <= n; i += P)
        for (int p = 0; p < P; ++p) part[p] = part[p] < v[i + p] ? v[i + p] : part[p];
    T m = part[0];
    for (int p = 1; p < P; ++p) m = m < part[p] ? part[p] : m;
    for (; i < n; ++i) m = m < v[i] ? v[i] : m;
    return m;
}

// A contiguous row (the last axis): y = softmax(x) or log_softmax(x); `tmp` holds n values.
template <typename T>
void softmax_row(const T* x, T* y, int64_t n, bool log, T* tmp) {
    T m = row_max(x, n);
    if (!std::isfinite(m)) m = T(0);
    T* e = tmp;  // exp in a scratch row (in cache): y is written once
    for (int64_t i = 0; i < n; ++i) e[i] = x[i] - m;
    exp_row(e, n);
    const double s = row_sum(e, n);
    if (log) {
        const T lse = T(std::log(s));
        for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - lse;
    } else {
        const T inv = T(1.0 / s);
        for (int64_t i = 0; i < n; ++i) y[i] = e[i] * inv;
    }
}

// Columns [c0, c0 + B) of a [n, inner] slab (an inner axis): the same, vectorised across the
// columns, streaming over the n rows; `tmp` holds 3 * B values.
template <typename T>
void softmax_columns(const T* x, T* y, int64_t n, int64_t inner, int64_t B, bool log, T* tmp) {
    T* m = tmp;
    T* s = tmp + B;
    T* e = tmp + 2 * B;
    for (int64_t j = 0; j < B; ++j) m[j] = -std::numeric_limits<T>::infinity();
    for (int64_t k = 0; k < n; ++k)
        for (int64_t j = 0; j < B; ++j) m[j] = m[j] < x[k * inner + j] ? x[k * inner + j] : m[j];
    for (int64_t j = 0; j < B; ++j) {
        if (!std::isfinite(m[j])) m[j] = T(0);
        s[j] = T(0);
    }
    for (int64_t k = 0; k < n; ++k) {  // exp into y (softmax) or a scratch row (log_softmax)
        T* row = log ? e : y + k * inner;
        for (int64_t j = 0; j < B; ++j) row[j] = x[k * inner + j] - m[j];
        exp_row(row, B);
        for (int64_t j = 0; j < B; ++j) s[j] += row[j];
    }
    if (log) {
        for (int64_t j = 0; j < B; ++j) s[j] = T(std::log(double(s[j])));
        for (int64_t k = 0; k < n; ++k)
            for (int64_t j = 0; j < B; ++j) y[k * inner + j] = (x[k * inner + j] - m[j]) - s[j];
    } else {
        for (int64_t j = 0; j < B; ++j) s[j] = T(1.0 / double(s[j]));
        for (int64_t k = 0; k < n; ++k)
            for (int64_t j = 0; j < B; ++j) y[k * inner + j] *= s[j];
    }
}

template <typename T>
void softmax_typed(const Tensor& xt, Tensor& yt, int axis, bool log) {
    AxisLayout L = axis_layout(xt.shape(), axis);
    const T* x = xt.data<T>();
    T* y = yt.data<T>();
    if (L.outer * L.inner == 0 || L.n == 0) return;
    if (L.inner == 1) {
        parallel_for(L.outer, std::max<int64_t>(1, 16384 / L.n), [&](int64_t r0, int64_t r1) {
            std::vector<T> tmp(static_cast<size_t>(L.n));
            for (int64_t r = r0; r < r1; ++r) softmax_row(x + r * L.n, y + r * L.n, L.n, log, tmp.data());
        });
        return;
    }
    constexpr int64_t kCols = 256;  // columns per task: a few vectors wide, rows streamed
    const int64_t blocks = (L.inner + kCols - 1) / kCols;
    parallel_for(L.outer * blocks, std::max<int64_t>(1, 16384 / (L.n * std::min(kCols, L.inner))),
                 [&](int64_t t0, int64_t t1) {
                     std::vector<T> tmp(static_cast<size_t>(3 * kCols));
                     for (int64_t t = t0; t < t1; ++t) {
                         const int64_t o = t / blocks, c0 = (t % blocks) * kCols;
                         const int64_t B = std::min(kCols, L.inner - c0), base = o * L.n * L.inner + c0;
                         softmax_columns(x + base, y + base, L.n, L.inner, B, log, tmp.data());
                     }
                 });
}

// ---- layer norm: rows of the trailing dims, (x - mean) / sqrt(var + eps) ----------------

std::vector<TensorInfo> layer_norm_infer(const Attrs& a, const std::vector<TensorInfo>& in) {
    const TensorInfo& x = in[0];
    MNN_CHECK_TYPE(is_float(x.dtype), a.op_name, ": expected a float input, got ", info_str(x));
    MNN_CHECK_VALUE(!x.shape.empty(), a.op_name, ": expected at least 1 dimension, got ", info_str(x));
    normalize_axis(a.i("axis"), int64_t(x.shape.size()), a.op_name);
    MNN_CHECK_VALUE(a.f("eps") >= 0, a.op_name, ": eps must be >= 0, got ", a.f("eps"));
    return {x};
}

template <typename T>
void layer_norm_row(const T* x, T* y, int64_t n, T eps) {
    const T mean = T(row_sum(x, n) / double(n));
    constexpr int P = 16;
    T part[P] = {};
    int64_t i = 0;
    for (; i + P <= n; i += P)
        for (int p = 0; p < P; ++p) part[p] += (x[i + p] - mean) * (x[i + p] - mean);
    double ss = 0;
    for (int p = 0; p < P; ++p) ss += double(part[p]);
    for (; i < n; ++i) ss += double((x[i] - mean) * (x[i] - mean));
    const T rstd = T(1.0 / std::sqrt(ss / double(n) + double(eps)));
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - mean) * rstd;
}

template <typename T>
void layer_norm_typed(const Tensor& xt, Tensor& yt, int axis, T eps) {
    int64_t n = 1;
    for (int64_t d = axis; d < xt.ndim(); ++d) n *= xt.shape()[size_t(d)];
    const int64_t rows = n == 0 ? 0 : xt.numel() / n;
    const T* x = xt.data<T>();
    T* y = yt.data<T>();
    parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) layer_norm_row(x + r * n, y + r * n, n, eps);
    });
}

void layer_norm_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    int axis = normalize_axis(a.i("axis"), in[0].ndim(), a.op_name);
    MNN_DISPATCH_FLOAT(in[0].dtype(), a.op_name,
                       layer_norm_typed<scalar_t>(in[0], out[0], axis, scalar_t(a.f("eps"))));
}

void softmax_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    int axis = normalize_axis(a.i("axis"), in[0].ndim(), a.op_name);
    const bool log = a.op == OpType::LogSoftmax;
    MNN_DISPATCH_FLOAT(in[0].dtype(), a.op_name, softmax_typed<scalar_t>(in[0], out[0], axis, log));
}

}  // namespace

void register_softmax_ops() {
    register_op(OpType::Softmax, softmax_infer, softmax_kernel);
    register_op(OpType::LogSoftmax, softmax_infer, softmax_kernel);
    register_op(OpType::LayerNorm, layer_norm_infer, layer_norm_kernel);
}

}  // namespace mnn
