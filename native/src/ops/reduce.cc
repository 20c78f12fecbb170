// Reductions (ReduceSum/Mean/Prod/Max/Min/Any/All, ArgMax/ArgMin) and
// cumulative scans (CumSum/CumProd).
//
// Every kernel views its input as [outer, R, inner]: R is the reduced (or
// scanned) extent, `inner` the contiguous tail after it.  Reductions over an
// arbitrary axis set first merge adjacent axes of the same kind (dropping
// size-1 axes); each remaining block of reduced axes is one [outer, R, inner]
// stage, from the last block to the first, with accumulators in between (so
// no transposed copy is ever made; finish() -- e.g. mean's division -- runs once).
//
//  - inner == 1: each output reduces a contiguous row.  Rows use pairwise
//    summation with 16 independent accumulators per leaf (as NumPy's pairwise
//    sum), which the compiler vectorises and which keeps float32 sums accurate;
//    float max/min use vector selects plus a NaN check, any/all stop early.
//  - inner > 1: rows of the reduced axis are combined elementwise into an
//    accumulator vector (vectorised over `inner`); blocks of 64 rows are
//    merged as a tree, which bounds the error of float32 sums.
// Long rows are split into fixed-size blocks (independent of the thread count,
// so results do not depend on it) whose partials are merged pairwise.
//
// dtype rules (NumPy 2 on Linux, with our float32 default):
//   sum, prod, cumsum, cumprod: bool and integers -> int64, floats keep dtype
//     (NumPy gives uint64 for uint8; we have no uint64 and give int64);
//   mean: bool and integers -> float32 (NumPy: float64), floats keep dtype;
//   max, min keep the dtype; any, all -> bool; argmax, argmin -> int64.
// NaN propagates through max/min, and argmax/argmin return the first NaN.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>

#include "core/thread_pool.h"
#include "ops/common.h"

namespace mnn {

namespace {

constexpr int64_t kGrain = 1 << 15;      // elements of work below which a job stays on the caller
constexpr int64_t kBlock = 1 << 15;      // fixed block of a long reduction (thread-count independent)
constexpr int64_t kLeaf = 256;           // pairwise summation leaf
constexpr int64_t kChunk = 1024;         // inner-axis chunk of the strided kernels

// A scratch array (std::vector<bool> would not give a bool*).
template <typename T> std::unique_ptr<T[]> scratch(int64_t n) { return std::unique_ptr<T[]>(new T[size_t(std::max<int64_t>(n, 1))]); }

template <typename A> inline A wrap_add(A a, A b) {
    if constexpr (std::is_integral_v<A>) return A(std::make_unsigned_t<A>(a) + std::make_unsigned_t<A>(b));
    else return a + b;
}
template <typename A> inline A wrap_mul(A a, A b) {
    if constexpr (std::is_integral_v<A>) return A(std::make_unsigned_t<A>(a) * std::make_unsigned_t<A>(b));
    else return a * b;
}

// ---- reduction functors: init / step / merge / finish --------------------------

template <typename In, typename Acc, typename Out>
struct SumOp {
    using in_t = In; using acc_t = Acc; using out_t = Out;
    static Acc init() { return Acc(0); }
    static Acc step(Acc a, In v) { return wrap_add(a, Acc(v)); }
    static Acc merge(Acc a, Acc b) { return wrap_add(a, b); }
    static Out finish(Acc a, int64_t) { return Out(a); }
};

template <typename In, typename Acc, typename Out>
struct MeanOp {
    using in_t = In; using acc_t = Acc; using out_t = Out;
    static Acc init() { return Acc(0); }
    static Acc step(Acc a, In v) { return a + Acc(v); }
    static Acc merge(Acc a, Acc b) { return a + b; }
    static Out finish(Acc a, int64_t n) { return Out(double(a) / double(n)); }  // n == 0 gives NaN, as NumPy
};

template <typename In, typename Acc, typename Out>
struct ProdOp {
    using in_t = In; using acc_t = Acc; using out_t = Out;
    static Acc init() { return Acc(1); }
    static Acc step(Acc a, In v) { return wrap_mul(a, Acc(v)); }
    static Acc merge(Acc a, Acc b) { return wrap_mul(a, b); }
    static Out finish(Acc a, int64_t) { return Out(a); }
};

template <typename T>
struct MaxOp {
    using in_t = T; using acc_t = T; using out_t = T;
    static T init() {
        if constexpr (std::is_floating_point_v<T>) return -std::numeric_limits<T>::infinity();
        else return std::numeric_limits<T>::lowest();
    }
    // NaN wins: once the accumulator is NaN no comparison replaces it.
    static T step(T a, T v) {
        T m = v > a ? v : a;  // written as two selects so that it vectorises
        if constexpr (std::is_floating_point_v<T>) return v != v ? v : m;
        else return m;
    }
    static T merge(T a, T b) { return step(a, b); }
    static T finish(T a, int64_t) { return a; }
};

template <typename T>
struct MinOp {
    using in_t = T; using acc_t = T; using out_t = T;
    static T init() {
        if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::infinity();
        else return std::numeric_limits<T>::max();
    }
    static T step(T a, T v) {
        T m = v < a ? v : a;
        if constexpr (std::is_floating_point_v<T>) return v != v ? v : m;
        else return m;
    }
    static T merge(T a, T b) { return step(a, b); }
    static T finish(T a, int64_t) { return a; }
};

template <typename In>
struct AnyOp {
    using in_t = In; using acc_t = bool; using out_t = bool;
    static bool init() { return false; }
    static bool step(bool a, In v) { return a | (v != In(0)); }
    static bool merge(bool a, bool b) { return a | b; }
    static bool finish(bool a, int64_t) { return a; }
};

template <typename In>
struct AllOp {
    using in_t = In; using acc_t = bool; using out_t = bool;
    static bool init() { return true; }
    static bool step(bool a, In v) { return a & (v != In(0)); }
    static bool merge(bool a, bool b) { return a & b; }
    static bool finish(bool a, int64_t) { return a; }
};

// ---- contiguous rows: pairwise, 16 accumulators per leaf -------------------------

template <class Op> struct IsMinMax : std::false_type {};
template <typename T> struct IsMinMax<MaxOp<T>> : std::true_type { static constexpr bool kMax = true; };
template <typename T> struct IsMinMax<MinOp<T>> : std::true_type { static constexpr bool kMax = false; };

// Float max/min of a contiguous run, on 16-byte vectors (GCC/Clang vector
// extensions, portable across ISAs).  The select ignores NaN (it compiles to
// maxps/minps); NaN is detected by a running sum, which can only turn NaN
// when a NaN is present or infinities/overflow meet -- then a second pass
// looks for NaN exactly.
template <typename T, bool kMax>
T minmax_float(const T* x, int64_t n, T init) {
    typedef T V __attribute__((vector_size(16)));
    constexpr int L = int(16 / sizeof(T)), U = 4;  // lanes, vectors per step
    V a[U], s[U];
    for (int u = 0; u < U; ++u) for (int l = 0; l < L; ++l) { a[u][l] = init; s[u][l] = 0; }
    int64_t i = 0;
    for (; i + L * U <= n; i += L * U)
        for (int u = 0; u < U; ++u) {
            V v;
            std::memcpy(&v, x + i + u * L, sizeof(V));
            if constexpr (kMax) a[u] = v > a[u] ? v : a[u];
            else a[u] = v < a[u] ? v : a[u];
            s[u] += v;
        }
    T r = init, sum = 0;
    for (int u = 0; u < U; ++u)
        for (int l = 0; l < L; ++l) {
            if constexpr (kMax) r = a[u][l] > r ? a[u][l] : r;
            else r = a[u][l] < r ? a[u][l] : r;
            sum += s[u][l];
        }
    for (; i < n; ++i) {
        T v = x[i];
        if constexpr (kMax) r = v > r ? v : r;
        else r = v < r ? v : r;
        sum += v;
    }
    if (sum != sum)
        for (int64_t k = 0; k < n; ++k)
            if (x[k] != x[k]) return x[k];
    return r;
}

template <class Op> struct IsAnyAll : std::false_type {};
template <typename T> struct IsAnyAll<AnyOp<T>> : std::true_type { static constexpr bool kAll = false; };
template <typename T> struct IsAnyAll<AllOp<T>> : std::true_type { static constexpr bool kAll = true; };

// any/all of a contiguous run: an OR-reduction per chunk (vectorised), stopping
// at the first chunk that decides the answer.
template <typename T, bool kAll>
bool anyall_contig(const T* x, int64_t n) {
    using U = std::conditional_t<sizeof(T) == 1, uint8_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
    for (int64_t b = 0; b < n; b += 1024) {
        int64_t e = std::min(n, b + 1024);
        U hit = 0;
        for (int64_t i = b; i < e; ++i) hit |= U(kAll ? x[i] == T(0) : x[i] != T(0));
        if (hit) return !kAll;
    }
    return kAll;
}

template <class Op>
typename Op::acc_t reduce_contig(const typename Op::in_t* x, int64_t n) {
    using Acc = typename Op::acc_t;
    if constexpr (IsMinMax<Op>::value && std::is_floating_point_v<Acc>)
        return minmax_float<Acc, IsMinMax<Op>::kMax>(x, n, Op::init());
    if constexpr (IsAnyAll<Op>::value) return anyall_contig<typename Op::in_t, IsAnyAll<Op>::kAll>(x, n);
    if (n <= kLeaf) {
        Acc r = Op::init();
        int64_t i = 0;
        if (n >= 16) {
            Acc a[16];
            for (int j = 0; j < 16; ++j) a[j] = Op::init();
            for (; i + 16 <= n; i += 16)
                for (int j = 0; j < 16; ++j) a[j] = Op::step(a[j], x[i + j]);
            for (int w = 8; w >= 1; w >>= 1)
                for (int j = 0; j < w; ++j) a[j] = Op::merge(a[j], a[j + w]);
            r = a[0];
        }
        for (; i < n; ++i) r = Op::step(r, x[i]);
        return r;
    }
    int64_t h = (n / 2) & ~int64_t(15);
    return Op::merge(reduce_contig<Op>(x, h), reduce_contig<Op>(x + h, n - h));
}

// Stage adapters for reductions over several separate axis groups: the first
// stage reduces inputs into accumulators, later stages merge accumulators.
template <class Op>
struct PartialOp {  // In -> Acc, no finish
    using in_t = typename Op::in_t; using acc_t = typename Op::acc_t; using out_t = acc_t;
    static acc_t init() { return Op::init(); }
    static acc_t step(acc_t a, in_t v) { return Op::step(a, v); }
    static acc_t merge(acc_t a, acc_t b) { return Op::merge(a, b); }
    static out_t finish(acc_t a, int64_t) { return a; }
};
template <class Op, bool kFinish>
struct MergeOp {  // Acc -> Acc (kFinish = false) or Acc -> Out
    using in_t = typename Op::acc_t; using acc_t = in_t;
    using out_t = std::conditional_t<kFinish, typename Op::out_t, acc_t>;
    static acc_t init() { return Op::init(); }
    static acc_t step(acc_t a, in_t v) { return Op::merge(a, v); }
    static acc_t merge(acc_t a, acc_t b) { return Op::merge(a, b); }
    static out_t finish(acc_t a, int64_t n) {
        if constexpr (kFinish) return Op::finish(a, n);
        else return a;
    }
};

// y[o] = reduce(x[o, 0:R]) for o < outer; `count` is what finish() divides by (mean).
template <class Op>
void reduce_rows(const typename Op::in_t* x, typename Op::out_t* y, int64_t outer, int64_t R, int64_t count) {
    using Acc = typename Op::acc_t;
    if (R >= 2 * kBlock) {  // long rows: fixed blocks in parallel, merged pairwise
        const int64_t nb = (R + kBlock - 1) / kBlock;
        auto part = scratch<Acc>(outer * nb);
        parallel_for(outer * nb, 1, [&](int64_t b, int64_t e) {
            for (int64_t t = b; t < e; ++t) {
                int64_t o = t / nb, s = (t % nb) * kBlock;
                part[t] = reduce_contig<Op>(x + o * R + s, std::min(kBlock, R - s));
            }
        });
        for (int64_t o = 0; o < outer; ++o) {
            Acc* p = part.get() + o * nb;
            for (int64_t w = 1; w < nb; w *= 2)
                for (int64_t k = 0; k + w < nb; k += 2 * w) p[k] = Op::merge(p[k], p[k + w]);
            y[o] = Op::finish(p[0], count);
        }
        return;
    }
    parallel_for(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(R, 1)), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) y[o] = Op::finish(reduce_contig<Op>(x + o * R, R), count);
    });
}

// y[o, i] = reduce_r(x[o, r, i]): rows of the reduced axis combined elementwise
// (vectorised over i).  Blocks of kRowBlock rows accumulate separately and are
// merged as a tree, which bounds the rounding error of float sums.
constexpr int64_t kRowBlock = 64;

template <class Op>
void reduce_strided(const typename Op::in_t* x, typename Op::out_t* y, int64_t outer, int64_t R, int64_t inner,
                    int64_t count) {
    using Acc = typename Op::acc_t;
    using In = typename Op::in_t;
    const int64_t ic = std::min(inner, kChunk), nic = (inner + ic - 1) / ic;
    const int64_t rb = std::min(R, kRowBlock), nrb = (R + rb - 1) / rb;
    auto block = [&](int64_t o, int64_t c, int64_t k, Acc* acc) {  // rows [k*rb, ...) of chunk c
        int64_t i0 = c * ic, w = std::min(ic, inner - i0), r0 = k * rb, r1 = std::min(R, r0 + rb);
        const In* p = x + (o * R + r0) * inner + i0;
        for (int64_t i = 0; i < w; ++i) acc[i] = Op::step(Op::init(), p[i]);
        for (int64_t r = r0 + 1; r < r1; ++r) {
            p += inner;
            for (int64_t i = 0; i < w; ++i) acc[i] = Op::step(acc[i], p[i]);
        }
        return w;
    };
    const int64_t task_work = rb * ic;
    if (nrb == 1) {
        parallel_for(outer * nic, std::max<int64_t>(1, kGrain / task_work), [&](int64_t b, int64_t e) {
            auto acc = scratch<Acc>(ic);
            for (int64_t t = b; t < e; ++t) {
                int64_t o = t / nic, c = t % nic, w = block(o, c, 0, acc.get());
                typename Op::out_t* q = y + o * inner + c * ic;
                for (int64_t i = 0; i < w; ++i) q[i] = Op::finish(acc[i], count);
            }
        });
        return;
    }
    // Partials [outer, nrb, inner]; each (o, chunk) merges its blocks as a tree.
    auto part = scratch<Acc>(outer * nrb * inner);
    parallel_for(outer * nic * nrb, std::max<int64_t>(1, kGrain / task_work), [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            int64_t o = t / (nic * nrb), rem = t % (nic * nrb), c = rem / nrb, k = rem % nrb;
            block(o, c, k, part.get() + (o * nrb + k) * inner + c * ic);
        }
    });
    parallel_for(outer * nic, std::max<int64_t>(1, kGrain / (nrb * ic)), [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
            int64_t o = t / nic, i0 = (t % nic) * ic, w = std::min(ic, inner - i0);
            Acc* p = part.get() + o * nrb * inner + i0;
            for (int64_t s = 1; s < nrb; s *= 2)
                for (int64_t k = 0; k + s < nrb; k += 2 * s) {
                    Acc* a = p + k * inner;
                    const Acc* bb = p + (k + s) * inner;
                    for (int64_t i = 0; i < w; ++i) a[i] = Op::merge(a[i], bb[i]);
                }
            typename Op::out_t* q = y + o * inner + i0;
            for (int64_t i = 0; i < w; ++i) q[i] = Op::finish(p[i], count);
        }
    });
}

template <class Op>
void reduce_core(const typename Op::in_t* x, typename Op::out_t* y, int64_t outer, int64_t R, int64_t inner,
                 int64_t count) {
    if (inner == 1) reduce_rows<Op>(x, y, outer, R, count);
    else reduce_strided<Op>(x, y, outer, R, inner, count);
}

// ---- layout: the input as groups of adjacent reduced / kept axes ------------------

struct Group { int64_t size; bool reduced; };

// Merges adjacent axes of the same kind; size-1 axes are dropped.
std::vector<Group> reduce_groups(const Shape& shape, const std::vector<char>& red) {
    std::vector<Group> g;
    for (size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] == 1) continue;
        if (!g.empty() && g.back().reduced == bool(red[d])) g.back().size *= shape[d];
        else g.push_back({shape[d], bool(red[d])});
    }
    return g;
}

// [outer, R, inner] around reduced group `j` (groups after it are already reduced away).
void around(const std::vector<Group>& g, size_t j, int64_t* outer, int64_t* inner) {
    *outer = 1; *inner = 1;
    for (size_t i = 0; i < j; ++i) *outer *= g[i].size;
    for (size_t i = j + 1; i < g.size(); ++i) *inner *= g[i].size;
}

template <class Op>
void run_reduce(const Tensor& x, Tensor& y, const std::vector<Group>& groups, int64_t count) {
    using In = typename Op::in_t;
    using Acc = typename Op::acc_t;
    using Out = typename Op::out_t;
    Out* py = y.data<Out>();
    if (x.numel() == 0) {  // empty reduction: the identity (max/min never get here with outputs)
        Out v = Op::finish(Op::init(), count);
        int64_t n = y.numel();
        for (int64_t i = 0; i < n; ++i) py[i] = v;
        return;
    }
    std::vector<Group> g = groups;
    std::vector<size_t> red;
    for (size_t i = 0; i < g.size(); ++i) if (g[i].reduced) red.push_back(i);
    const In* px = x.data<In>();
    int64_t outer, inner;
    if (red.size() <= 1) {  // one block of reduced axes (or none: a conversion)
        if (red.empty()) { reduce_core<Op>(px, py, x.numel(), 1, 1, count); return; }
        around(g, red[0], &outer, &inner);
        reduce_core<Op>(px, py, outer, g[red[0]].size, inner, count);
        return;
    }
    // Several blocks: reduce the last one into accumulators, then merge the
    // others from last to first; only the final stage applies finish().
    std::unique_ptr<Acc[]> cur, next;
    for (size_t s = red.size(); s-- > 0;) {
        size_t j = red[s];
        around(g, j, &outer, &inner);
        int64_t R = g[j].size;
        bool first = s + 1 == red.size(), last = s == 0;
        if (!last) next = scratch<Acc>(outer * inner);
        if (first) reduce_core<PartialOp<Op>>(px, next.get(), outer, R, inner, count);
        else if (!last) reduce_core<MergeOp<Op, false>>(cur.get(), next.get(), outer, R, inner, count);
        else reduce_core<MergeOp<Op, true>>(cur.get(), py, outer, R, inner, count);
        cur = std::move(next);
        g.erase(g.begin() + long(j));
    }
}

// ---- attributes and shape rules --------------------------------------------------

std::vector<char> reduced_mask(const Attrs& a, const TensorInfo& in) {
    const auto& axes = a.ints("axes");
    int64_t nd = int64_t(in.shape.size());
    std::vector<char> red(size_t(nd), axes.empty() ? 1 : 0);
    for (int64_t ax : axes) {
        int d = normalize_axis(ax, nd, a.op_name);
        MNN_CHECK_VALUE(!red[size_t(d)], a.op_name, ": repeated axis ", ax, " in axes for input ", info_str(in));
        red[size_t(d)] = 1;
    }
    return red;
}

const char* numpy_reduction_name(OpType op) {
    switch (op) {
        case OpType::ReduceMax: return "maximum";
        case OpType::ReduceMin: return "minimum";
        default: return "reduction";
    }
}

DType sum_dtype(DType t) { return is_float(t) ? t : DType::Int64; }

DType reduce_out_dtype(OpType op, DType t) {
    switch (op) {
        case OpType::ReduceSum: case OpType::ReduceProd: return sum_dtype(t);
        case OpType::ReduceMean: return is_float(t) ? t : DType::Float32;
        case OpType::ReduceAny: case OpType::ReduceAll: return DType::Bool;
        default: return t;
    }
}

std::vector<TensorInfo> reduce_infer(const Attrs& a, const std::vector<TensorInfo>& in) {
    const TensorInfo& x = in[0];
    std::vector<char> red = reduced_mask(a, x);
    bool keep = a.b("keepdims");
    Shape out;
    int64_t count = 1;
    for (size_t d = 0; d < x.shape.size(); ++d) {
        if (red[d]) { count *= x.shape[d]; if (keep) out.push_back(1); }
        else out.push_back(x.shape[d]);
    }
    if ((a.op == OpType::ReduceMax || a.op == OpType::ReduceMin) && count == 0)
        throw ValueError(fmt(a.op_name, ": zero-size array to reduction operation ", numpy_reduction_name(a.op),
                             " which has no identity (input ", info_str(x), ")"));
    return {TensorInfo{reduce_out_dtype(a.op, x.dtype), out}};
}

// Accumulator types: floats accumulate in their own type (pairwise / tree-merged
// blocks keep that accurate), integers in int64 (wrapping), mean of integers in
// double; scans accumulate float32 in double (a scan has no blocks to merge).
template <typename T> using SumAccC = std::conditional_t<std::is_floating_point_v<T>, T, int64_t>;
template <typename T> using SumAccS = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
template <typename T> using SumOut = std::conditional_t<std::is_floating_point_v<T>, T, int64_t>;
template <typename T> using MeanAccC = std::conditional_t<std::is_floating_point_v<T>, T, double>;
template <typename T> using MeanOut = std::conditional_t<std::is_floating_point_v<T>, T, float>;

void reduce_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    const Tensor& x = in[0];
    std::vector<char> red = reduced_mask(a, x.info);
    std::vector<Group> L = reduce_groups(x.shape(), red);
    int64_t count = 1;
    for (size_t d = 0; d < red.size(); ++d) if (red[d]) count *= x.shape()[d];
    Tensor& y = out[0];
    MNN_DISPATCH_COMPUTE(x.dtype(), a.op_name, {
        using T = scalar_t;
        switch (a.op) {
            case OpType::ReduceSum:
                run_reduce<SumOp<T, SumAccC<T>, SumOut<T>>>(x, y, L, count); break;
            case OpType::ReduceMean:
                run_reduce<MeanOp<T, MeanAccC<T>, MeanOut<T>>>(x, y, L, count); break;
            case OpType::ReduceProd:
                run_reduce<ProdOp<T, SumAccC<T>, SumOut<T>>>(x, y, L, count); break;
            case OpType::ReduceMax: run_reduce<MaxOp<T>>(x, y, L, count); break;
            case OpType::ReduceMin: run_reduce<MinOp<T>>(x, y, L, count); break;
            case OpType::ReduceAny: run_reduce<AnyOp<T>>(x, y, L, count); break;
            case OpType::ReduceAll: run_reduce<AllOp<T>>(x, y, L, count); break;
            default: throw ValueError(fmt(a.op_name, ": not a reduction (internal error)"));
        }
    });
}

// ---- argmax / argmin ---------------------------------------------------------------

// Does `v` replace the current best?  Strict comparison keeps the first of ties;
// a NaN replaces any number and is never replaced (first NaN wins, as NumPy).
template <typename T, bool kMax>
inline bool better(T v, T best) {
    if constexpr (std::is_floating_point_v<T>) {
        if (best != best) return false;
        if (v != v) return true;
    }
    if constexpr (kMax) return v > best;
    else return v < best;
}

// Index of the first element equal to `v` (or the first NaN when v is NaN):
// chunks are tested with a vectorised OR before being scanned.
template <typename T>
int64_t find_first(const T* x, int64_t n, T v) {
    using U = std::conditional_t<sizeof(T) == 1, uint8_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
    const bool nan = is_nan(v);
    for (int64_t b = 0; b < n; b += 256) {
        int64_t e = std::min(n, b + 256);
        U hit = 0;
        if (nan) for (int64_t i = b; i < e; ++i) hit |= U(x[i] != x[i]);
        else for (int64_t i = b; i < e; ++i) hit |= U(x[i] == v);
        if (hit)
            for (int64_t i = b; i < e; ++i)
                if (nan ? is_nan(x[i]) : x[i] == v) return i;
    }
    return 0;  // unreachable: v is an element of x
}

// argmax/argmin of a contiguous run: the extreme value (vectorised, NaN wins),
// then the first position holding it.
template <typename T, bool kMax>
std::pair<T, int64_t> arg_contig(const T* x, int64_t n) {
    using Op = std::conditional_t<kMax, MaxOp<T>, MinOp<T>>;
    T best = reduce_contig<Op>(x, n);
    return {best, find_first(x, n, best)};
}


template <typename T, bool kMax>
void arg_typed(const T* x, int64_t* y, AxisLayout L) {
    const int64_t outer = L.outer, R = L.n, inner = L.inner;
    if (inner == 1 && R <= 16) {  // short rows (e.g. pooling windows): a plain scan per row
        parallel_for(outer, std::max<int64_t>(1, kGrain / R), [&](int64_t b, int64_t e) {
            for (int64_t o = b; o < e; ++o) {
                const T* p = x + o * R;
                T best = p[0];
                int64_t bi = 0;
                for (int64_t r = 1; r < R; ++r)
                    if (better<T, kMax>(p[r], best)) { best = p[r]; bi = r; }
                y[o] = bi;
            }
        });
        return;
    }
    if (inner == 1) {
        if (R >= 2 * kBlock) {
            int64_t nb = (R + kBlock - 1) / kBlock;
            std::vector<std::pair<T, int64_t>> part(static_cast<size_t>(outer * nb));
            parallel_for(outer * nb, 1, [&](int64_t b, int64_t e) {
                for (int64_t t = b; t < e; ++t) {
                    int64_t o = t / nb, s = (t % nb) * kBlock;
                    auto r = arg_contig<T, kMax>(x + o * R + s, std::min(kBlock, R - s));
                    part[size_t(t)] = {r.first, r.second + s};
                }
            });
            for (int64_t o = 0; o < outer; ++o) {
                auto cur = part[size_t(o * nb)];
                for (int64_t k = 1; k < nb; ++k)
                    if (better<T, kMax>(part[size_t(o * nb + k)].first, cur.first)) cur = part[size_t(o * nb + k)];
                y[o] = cur.second;
            }
            return;
        }
        parallel_for(outer, std::max<int64_t>(1, kGrain / R), [&](int64_t b, int64_t e) {
            for (int64_t o = b; o < e; ++o) y[o] = arg_contig<T, kMax>(x + o * R, R).second;
        });
        return;
    }
    const int64_t ic = std::min(inner, kChunk), nic = (inner + ic - 1) / ic;
    parallel_for(outer * nic, std::max<int64_t>(1, kGrain / (R * ic)), [&](int64_t b, int64_t e) {
        auto best = scratch<T>(ic);
        for (int64_t t = b; t < e; ++t) {
            int64_t o = t / nic, i0 = (t % nic) * ic, w = std::min(ic, inner - i0);
            int64_t* idx = y + o * inner + i0;
            const T* p0 = x + o * R * inner + i0;
            for (int64_t i = 0; i < w; ++i) { best[size_t(i)] = p0[i]; idx[i] = 0; }
            for (int64_t r = 1; r < R; ++r) {
                const T* p = p0 + r * inner;
                for (int64_t i = 0; i < w; ++i)
                    if (better<T, kMax>(p[i], best[size_t(i)])) { best[size_t(i)] = p[i]; idx[i] = r; }
            }
        }
    });
}

std::vector<TensorInfo> arg_infer(const Attrs& a, const std::vector<TensorInfo>& in) {
    const TensorInfo& x = in[0];
    int axis = normalize_axis(a.i("axis"), int64_t(x.shape.size()), a.op_name);
    if (x.shape[size_t(axis)] == 0)
        throw ValueError(fmt(a.op_name, ": attempt to get ", a.op_name, " of an empty sequence (input ", info_str(x),
                             ", axis ", a.i("axis"), ")"));
    Shape out;
    for (size_t d = 0; d < x.shape.size(); ++d) {
        if (int(d) == axis) { if (a.b("keepdims")) out.push_back(1); }
        else out.push_back(x.shape[d]);
    }
    return {TensorInfo{DType::Int64, out}};
}

void arg_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    const Tensor& x = in[0];
    if (out[0].numel() == 0) return;
    int axis = normalize_axis(a.i("axis"), x.ndim(), a.op_name);
    AxisLayout L = axis_layout(x.shape(), axis);
    bool is_max = a.op == OpType::ArgMax;
    MNN_DISPATCH_COMPUTE(x.dtype(), a.op_name, {
        if (is_max) arg_typed<scalar_t, true>(x.data<scalar_t>(), out[0].data<int64_t>(), L);
        else arg_typed<scalar_t, false>(x.data<scalar_t>(), out[0].data<int64_t>(), L);
    });
}

// ---- cumsum / cumprod ---------------------------------------------------------------

std::vector<TensorInfo> scan_infer(const Attrs& a, const std::vector<TensorInfo>& in) {
    const TensorInfo& x = in[0];
    normalize_axis(a.i("axis"), int64_t(x.shape.size()), a.op_name);
    return {TensorInfo{sum_dtype(x.dtype), x.shape}};
}

template <typename In, typename Acc, typename Out, bool kProd>
void scan_typed(const In* x, Out* y, AxisLayout L, bool exclusive, bool reverse) {
    const int64_t outer = L.outer, R = L.n, inner = L.inner;
    auto op = [](Acc a, In v) { return kProd ? wrap_mul(a, Acc(v)) : wrap_add(a, Acc(v)); };
    const Acc id = kProd ? Acc(1) : Acc(0);
    if (inner == 1) {
        parallel_for(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(R, 1)), [&](int64_t b, int64_t e) {
            for (int64_t o = b; o < e; ++o) {
                const In* p = x + o * R;
                Out* q = y + o * R;
                Acc acc = id;
                for (int64_t k = 0; k < R; ++k) {
                    int64_t r = reverse ? R - 1 - k : k;
                    if (exclusive) { q[r] = Out(acc); acc = op(acc, p[r]); }
                    else { acc = op(acc, p[r]); q[r] = Out(acc); }
                }
            }
        });
        return;
    }
    const int64_t ic = std::min(inner, kChunk), nic = (inner + ic - 1) / ic;
    parallel_for(outer * nic, std::max<int64_t>(1, kGrain / std::max<int64_t>(R * ic, 1)), [&](int64_t b, int64_t e) {
        auto acc = scratch<Acc>(ic);
        for (int64_t t = b; t < e; ++t) {
            int64_t o = t / nic, i0 = (t % nic) * ic, w = std::min(ic, inner - i0);
            for (int64_t i = 0; i < w; ++i) acc[size_t(i)] = id;
            for (int64_t k = 0; k < R; ++k) {
                int64_t r = reverse ? R - 1 - k : k;
                const In* p = x + (o * R + r) * inner + i0;
                Out* q = y + (o * R + r) * inner + i0;
                Acc* A = acc.get();
                if (exclusive) for (int64_t i = 0; i < w; ++i) { q[i] = Out(A[i]); A[i] = op(A[i], p[i]); }
                else for (int64_t i = 0; i < w; ++i) { A[i] = op(A[i], p[i]); q[i] = Out(A[i]); }
            }
        }
    });
}

void scan_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    const Tensor& x = in[0];
    if (x.numel() == 0) return;
    int axis = normalize_axis(a.i("axis"), x.ndim(), a.op_name);
    AxisLayout L = axis_layout(x.shape(), axis);
    bool ex = a.b("exclusive"), rev = a.b("reverse"), prod = a.op == OpType::CumProd;
    MNN_DISPATCH_COMPUTE(x.dtype(), a.op_name, {
        using T = scalar_t;
        using Acc = SumAccS<T>;  // float32 accumulates in double
        using Out = SumOut<T>;
        if (prod) scan_typed<T, Acc, Out, true>(x.data<T>(), out[0].data<Out>(), L, ex, rev);
        else scan_typed<T, Acc, Out, false>(x.data<T>(), out[0].data<Out>(), L, ex, rev);
    });
}

}  // namespace

void register_reduce_ops() {
    for (OpType t : {OpType::ReduceSum, OpType::ReduceMean, OpType::ReduceProd, OpType::ReduceMax, OpType::ReduceMin,
                     OpType::ReduceAny, OpType::ReduceAll})
        register_op(t, reduce_infer, reduce_kernel);
    register_op(OpType::ArgMax, arg_infer, arg_kernel);
    register_op(OpType::ArgMin, arg_infer, arg_kernel);
    register_op(OpType::CumSum, scan_infer, scan_kernel);
    register_op(OpType::CumProd, scan_infer, scan_kernel);
}

}  // namespace mnn
