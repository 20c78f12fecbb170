// MatMul: NumPy matmul semantics (1-d operands promoted and the added dim
// removed after, batch dims broadcast), with transpose flags on the last two
// dims of operands of ndim >= 2.  Floats run on the packed GEMM (gemm.cc),
// integers and bools on plain loops (integers wrap around as in NumPy).
#include <algorithm>
#include <type_traits>

#include "core/thread_pool.h"
#include "ops/common.h"
#include "ops/gemm_ext.h"

namespace mnn {

namespace {

// The operand geometry a MatMul works on, derived from the input shapes.
struct MatMulDims {
    Shape batch;           // broadcast batch shape of the output
    Shape a_batch, b_batch;  // batch dims of each input (possibly fewer than batch)
    int64_t M = 1, N = 1, K = 1;
    bool a_vec = false, b_vec = false;  // 1-d operands
    bool ta = false, tb = false;        // effective transposes (ignored for 1-d)
};

MatMulDims matmul_dims(const Attrs& attrs, const TensorInfo& a, const TensorInfo& b) {
    const char* name = attrs.op_name;
    MNN_CHECK_VALUE(!a.shape.empty() && !b.shape.empty(), name, ": operands must have at least one dimension, got ",
                    info_str(a), " and ", info_str(b), " (use multiply for scalars)");
    MatMulDims d;
    size_t na = a.shape.size(), nb = b.shape.size();
    d.a_vec = na == 1;
    d.b_vec = nb == 1;
    d.ta = !d.a_vec && attrs.b("transpose_a");
    d.tb = !d.b_vec && attrs.b("transpose_b");
    int64_t ka;
    if (d.a_vec) {
        d.M = 1;
        ka = a.shape[0];
    } else {
        int64_t r = a.shape[na - 2], c = a.shape[na - 1];
        d.M = d.ta ? c : r;
        ka = d.ta ? r : c;
        d.a_batch.assign(a.shape.begin(), a.shape.end() - 2);
    }
    int64_t kb;
    if (d.b_vec) {
        d.N = 1;
        kb = b.shape[0];
    } else {
        int64_t r = b.shape[nb - 2], c = b.shape[nb - 1];
        kb = d.tb ? c : r;
        d.N = d.tb ? r : c;
        d.b_batch.assign(b.shape.begin(), b.shape.end() - 2);
    }
    MNN_CHECK_VALUE(ka == kb, name, ": shapes ", shape_str(a.shape), d.ta ? " (transposed)" : "", " and ",
                    shape_str(b.shape), d.tb ? " (transposed)" : "", " do not align: contraction sizes ", ka, " != ",
                    kb);
    d.K = ka;
    // Batch dims broadcast like NumPy.
    size_t nd = std::max(d.a_batch.size(), d.b_batch.size());
    d.batch.assign(nd, 1);
    for (size_t i = 0; i < nd; ++i) {
        int64_t x = i + d.a_batch.size() >= nd ? d.a_batch[i + d.a_batch.size() - nd] : 1;
        int64_t y = i + d.b_batch.size() >= nd ? d.b_batch[i + d.b_batch.size() - nd] : 1;
        MNN_CHECK_VALUE(x == y || x == 1 || y == 1, name, ": batch dimensions of ", shape_str(a.shape), " and ",
                        shape_str(b.shape), " do not broadcast (", x, " vs ", y, ")");
        d.batch[i] = x == 1 ? y : x;
    }
    return d;
}

std::vector<TensorInfo> matmul_infer(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    const TensorInfo &a = in[0], &b = in[1];
    MNN_CHECK_TYPE(a.dtype == b.dtype, attrs.op_name, ": inputs must share a dtype after promotion, got ", info_str(a),
                   " and ", info_str(b));
    MatMulDims d = matmul_dims(attrs, a, b);
    Shape out = d.batch;
    if (!d.a_vec) out.push_back(d.M);
    if (!d.b_vec) out.push_back(d.N);
    return {TensorInfo{a.dtype, out}};
}

// Offsets (in matrices) of each output batch entry into an input's batch dims.
std::vector<int64_t> batch_offsets(const Shape& in_batch, const Shape& out_batch) {
    Shape padded(out_batch.size() - in_batch.size(), 1);
    padded.insert(padded.end(), in_batch.begin(), in_batch.end());
    Shape st = broadcast_strides(padded, out_batch);
    int64_t n = numel(out_batch);
    std::vector<int64_t> off(size_t(n), 0);
    int nd = int(out_batch.size());
    for (int64_t i = 0; i < n; ++i) {
        int64_t rem = i, o = 0;
        for (int j = nd - 1; j >= 0; --j) {
            o += (rem % out_batch[j]) * st[j];
            rem /= out_batch[j];
        }
        off[size_t(i)] = o;
    }
    return off;
}

// Integer / bool product of one matrix pair (row-major, contiguous).
template <typename T>
void matmul_loop(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C) {
    if constexpr (std::is_same_v<T, bool>) {
        for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
                bool v = false;
                for (int64_t k = 0; k < K && !v; ++k)
                    v = (ta ? A[k * M + m] : A[m * K + k]) && (tb ? B[n * K + k] : B[k * N + n]);
                C[m * N + n] = v;
            }
    } else {
        // Accumulate in an unsigned type: wrap-around arithmetic without UB.
        using W = std::conditional_t<(sizeof(T) < 4), uint32_t, std::make_unsigned_t<T>>;
        parallel_for(M, std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, N * K)), [&](int64_t m0, int64_t m1) {
            std::vector<W> acc(static_cast<size_t>(N));
            for (int64_t m = m0; m < m1; ++m) {
                std::fill(acc.begin(), acc.end(), W(0));
                for (int64_t k = 0; k < K; ++k) {
                    W a = W(ta ? A[k * M + m] : A[m * K + k]);
                    if (!tb) {
                        const T* b = B + k * N;
                        for (int64_t n = 0; n < N; ++n) acc[n] += a * W(b[n]);
                    } else {
                        for (int64_t n = 0; n < N; ++n) acc[n] += a * W(B[n * K + k]);
                    }
                }
                for (int64_t n = 0; n < N; ++n) C[m * N + n] = T(acc[n]);
            }
        });
    }
}

// `epi` (floats only): an epilogue for the whole output, Full operands laid out like it.
template <typename T>
void matmul_typed(const MatMulDims& d, const Tensor& a, const Tensor& b, Tensor& out,
                  const GemmEpilogue<T>* epi = nullptr) {
    const int64_t M = d.M, N = d.N, K = d.K;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = out.data<T>();
    const int64_t nbatch = numel(d.batch);
    if (nbatch == 0 || M == 0 || N == 0) return;
    const int64_t sa = M * K, sb = K * N, sc = M * N;
    constexpr bool kFloat = std::is_floating_point_v<T>;
    // Leading dims of the stored matrices.
    const int64_t lda = d.ta ? M : K, ldb = d.tb ? K : N;

    auto one = [&](const T* A, const T* B, T* C) {
        if constexpr (kFloat) {
            if (!epi) return gemm<T>(d.ta, d.tb, M, N, K, T(1), A, lda, B, ldb, T(0), C, N);
            GemmEpilogue<T> e = *epi;  // Full operands at this batch entry
            for (int k = 0; k < e.n_ops; ++k)
                if (e.ops[k].operand == EpilogueOp::Full) e.ops[k].ptr += C - pc;
            gemm_epilogue<T>(d.ta, d.tb, M, N, K, A, lda, B, ldb, C, N, e);
        } else {
            matmul_loop<T>(d.ta, d.tb, M, N, K, A, B, C);
        }
    };

    // B shared by every batch entry and A not transposed: one tall product.
    if (kFloat && numel(d.b_batch) == 1 && numel(d.a_batch) == nbatch && !d.ta) {
        if constexpr (kFloat) {
            if (epi) gemm_epilogue<T>(false, d.tb, nbatch * M, N, K, pa, K, pb, ldb, pc, N, *epi);
            else gemm<T>(false, d.tb, nbatch * M, N, K, T(1), pa, K, pb, ldb, T(0), pc, N);
        }
        return;
    }
    if (nbatch == 1) { one(pa, pb, pc); return; }
    std::vector<int64_t> oa = batch_offsets(d.a_batch, d.batch), ob = batch_offsets(d.b_batch, d.batch);
    // Small matrices: spread the batch over threads (each product then runs
    // single-threaded); large ones: one at a time, each multi-threaded.
    const int64_t work = std::max<int64_t>(1, M * N * std::max<int64_t>(K, 1));
    const int64_t grain = kFloat && work >= (int64_t(1) << 18) ? nbatch : std::max<int64_t>(1, (int64_t(1) << 16) / work);
    if (grain >= nbatch) {
        for (int64_t i = 0; i < nbatch; ++i) one(pa + oa[size_t(i)] * sa, pb + ob[size_t(i)] * sb, pc + i * sc);
        return;
    }
    parallel_for(nbatch, grain, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) one(pa + oa[size_t(i)] * sa, pb + ob[size_t(i)] * sb, pc + i * sc);
    });
}

void matmul_kernel(const Attrs& attrs, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    MatMulDims d = matmul_dims(attrs, in[0].info, in[1].info);
    MNN_DISPATCH_COMPUTE(in[0].dtype(), attrs.op_name, matmul_typed<scalar_t>(d, in[0], in[1], out[0]));
}

template <typename T>
void matmul_fused_typed(const MatMulDims& d, const std::vector<Tensor>& ins, const ConvEpilogue& epi, Tensor& out) {
    GemmEpilogue<T> e;
    for (const EpilogueOp& op : epi.ops) {
        typename GemmEpilogue<T>::Op& o = e.ops[e.n_ops++];
        o.kind = op.kind;
        o.operand = op.operand;
        o.swap = op.swap;
        o.ptr = op.operand == EpilogueOp::None ? nullptr : ins[size_t(op.input)].data<T>();
        o.ld = d.N;
    }
    if (out.numel() == 0) return;
    matmul_typed<T>(d, ins[0], ins[1], out, &e);
}

}  // namespace

void matmul_fused(const Attrs& attrs, const std::vector<Tensor>& ins, const ConvEpilogue& epi, Tensor& out) {
    MatMulDims d = matmul_dims(attrs, ins[0].info, ins[1].info);
    MNN_CHECK_VALUE(!d.a_vec && !d.b_vec && int(epi.ops.size()) <= kMaxEpilogueOps, attrs.op_name,
                    ": fused epilogue on a 1-d operand or too many ops (internal error)");
    for (const EpilogueOp& op : epi.ops) {  // operands as the pass chose them (internal consistency)
        if (op.operand == EpilogueOp::None) continue;
        const Tensor& t = ins[size_t(op.input)];
        const int64_t want = op.operand == EpilogueOp::Scalar ? 1 : op.operand == EpilogueOp::Channel ? d.N : out.numel();
        MNN_CHECK_VALUE(t.numel() == want && t.dtype() == out.dtype(), attrs.op_name,
                        ": fused epilogue operand ", info_str(t.info), " does not fit (internal error)");
    }
    MNN_DISPATCH_FLOAT(ins[0].dtype(), attrs.op_name, matmul_fused_typed<scalar_t>(d, ins, epi, out));
}

void register_linalg_ops() { register_op(OpType::MatMul, matmul_infer, matmul_kernel); }

}  // namespace mnn
