// The conv_epilogue and matmul_epilogue passes (passes.h): a convolution or a matmul and the
// elementwise chain after it become one step whose kernel applies the chain to each output
// tile while it is in cache or registers (ops/conv_epilogue.h, ops/gemm_ext.h), e.g. ResNet's
// conv -> relu and conv -> add(residual) -> relu, MobileNet's conv -> maximum(0) -> minimum(6),
// a Linear layer's matmul -> add(bias) -> relu.
//
// A chain step joins when it is the only reader of the value so far (which is no result), has
// that value's shape and dtype, and is relu, or add / subtract / multiply / maximum / minimum
// whose other operand is one value, one value per output channel (broadcast over the rest; for
// a matmul, one value per output column: a bias over the last axis) or a tensor of the
// output's shape.  The fused step takes the place of the chain's last step (so an operand
// computed after the producer is ready), reads the producer's inputs and the operands, and
// writes the chain's result; the other steps are dropped.  Plans stay keyed by structure:
// which steps fuse follows from op types, shapes and wiring only (operand values are read at
// run time).
#include "graph/passes.h"

namespace mnn {

namespace {

// `o` broadcasts to `out` along every axis but the channel axis (1 of [N, C, H, W], 0 of [C, H, W]),
// where it has all C values.
bool per_channel(const Shape& o, const Shape& out) {
    const size_t R = out.size(), ca = R - 3;
    if (o.size() > R) return false;
    for (size_t a = 0; a < R; ++a) {
        const int64_t d = a + o.size() >= R ? o[a + o.size() - R] : 1;
        if (d != (a == ca ? out[a] : 1)) return false;
    }
    return true;
}

// `o` broadcasts to `out` along every axis but the last, where it has all its values.
bool per_column(const Shape& o, const Shape& out) {
    const size_t R = out.size();
    if (o.empty() || o.size() > R) return false;
    for (size_t a = 0; a < R; ++a) {
        const int64_t d = a + o.size() >= R ? o[a + o.size() - R] : 1;
        if (d != (a == R - 1 ? out[a] : 1)) return false;
    }
    return true;
}

bool epilogue_kind(OpType op, EpilogueOp::Kind* k) {
    switch (op) {
        case OpType::Relu: *k = EpilogueOp::Relu; return true;
        case OpType::Add: *k = EpilogueOp::Add; return true;
        case OpType::Sub: *k = EpilogueOp::Sub; return true;
        case OpType::Mul: *k = EpilogueOp::Mul; return true;
        case OpType::Maximum: *k = EpilogueOp::Max; return true;
        case OpType::Minimum: *k = EpilogueOp::Min; return true;
        default: return false;
    }
}

}  // namespace

namespace {

// Fuses each step `producer` accepts with the elementwise chain after it; `channel` says whether
// an operand shape is the producer's per-channel broadcast.  Returns the chain steps fused.
template <typename Producer, typename Channel>
int64_t fuse_chains(PassProgram& p, Producer producer, Channel channel) {
    int64_t fused_steps = 0;
    const size_t n_slots = p.slot_info.size();
    std::vector<int> readers(n_slots, 0), reader(n_slots, -1);
    std::vector<char> is_target(n_slots, 0);
    for (int t : p.targets) is_target[size_t(p.alias[size_t(t)])] = 1;
    for (size_t k = 0; k < p.steps.size(); ++k) {
        const PassStep& st = p.steps[k];
        if (st.dropped) continue;
        for (int i : st.in_slots) {
            ++readers[size_t(i)];
            reader[size_t(i)] = int(k);
        }
    }
    for (size_t k = 0; k < p.steps.size(); ++k) {
        PassStep& st = p.steps[k];
        if (st.dropped || st.epilogue >= 0 || st.out_slots.size() != 1) continue;
        if (!producer(st)) continue;
        const TensorInfo info = p.slot_info[size_t(st.out_slots[0])];
        ConvEpilogue epi;
        epi.conv_inputs = int(st.in_slots.size());
        std::vector<int> ins = st.in_slots, chain;
        int cur = st.out_slots[0];
        while (int(epi.ops.size()) < kMaxEpilogueOps && !is_target[size_t(cur)] && readers[size_t(cur)] == 1) {
            const int r = reader[size_t(cur)];
            const PassStep& rs = p.steps[size_t(r)];
            const Node* n = (*p.order)[size_t(rs.node)];
            EpilogueOp op;
            if (rs.dropped || rs.epilogue >= 0 || rs.out_slots.size() != 1 || !(p.slot_info[size_t(rs.out_slots[0])] == info) ||
                !epilogue_kind(n->op, &op.kind))
                break;
            if (op.kind != EpilogueOp::Relu) {
                if (rs.in_slots.size() != 2) break;
                const bool first = rs.in_slots[0] == cur;
                const int other = rs.in_slots[first ? 1 : 0];
                const TensorInfo& oi = p.slot_info[size_t(other)];
                if (oi.dtype != info.dtype) break;
                if (oi.numel() == 1) op.operand = EpilogueOp::Scalar;
                else if (oi.shape == info.shape) op.operand = EpilogueOp::Full;
                else if (channel(oi.shape, info.shape)) op.operand = EpilogueOp::Channel;
                else break;
                op.swap = !first;
                op.input = int(ins.size());
                ins.push_back(other);
            }
            epi.ops.push_back(op);
            chain.push_back(r);
            cur = rs.out_slots[0];
        }
        if (chain.empty()) continue;
        PassStep& fused = p.steps[size_t(chain.back())];
        fused.node = st.node;
        fused.attrs = st.attrs;
        fused.in_slots = std::move(ins);
        fused.out_slots = {cur};
        fused.epilogue = int(p.epilogues.size());
        p.epilogues.push_back(std::move(epi));
        st.dropped = true;
        for (size_t c = 0; c + 1 < chain.size(); ++c) p.steps[size_t(chain[c])].dropped = true;
        fused_steps += int64_t(chain.size());
    }
    return fused_steps;
}

bool float_dtype(DType t) { return t == DType::Float32 || t == DType::Float64; }

}  // namespace

void conv_epilogue_pass(PassProgram& p) {
    p.counts.conv_epilogue += fuse_chains(
        p,
        [&](const PassStep& st) {
            if ((*p.order)[size_t(st.node)]->op != OpType::Conv2d) return false;
            const TensorInfo& info = p.slot_info[size_t(st.out_slots[0])];
            return float_dtype(info.dtype) && (info.shape.size() == 4 || info.shape.size() == 3);
        },
        per_channel);
}

void matmul_epilogue_pass(PassProgram& p) {
    p.counts.matmul_epilogue += fuse_chains(
        p,
        [&](const PassStep& st) {
            if ((*p.order)[size_t(st.node)]->op != OpType::MatMul || st.in_slots.size() != 2) return false;
            const TensorInfo& info = p.slot_info[size_t(st.out_slots[0])];
            // both operands matrices (a 1-d operand drops an output axis: no "column" then)
            return float_dtype(info.dtype) && info.shape.size() >= 2 &&
                   p.slot_info[size_t(st.in_slots[0])].shape.size() >= 2 &&
                   p.slot_info[size_t(st.in_slots[1])].shape.size() >= 2;
        },
        per_column);
}

}  // namespace mnn
