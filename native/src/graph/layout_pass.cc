// The layout pass (passes.h): chains of convolutions exchange channel-blocked values
// ([N, ceil(C/16), H, W, 16], ops/conv_blocked.h) instead of NCHW ones.
//
// A float32 conv2d step is *capable* when a blocked kernel serves it (1x1, depthwise, a stem)
// and its fused epilogue has no per-channel operand.  Its output is stored blocked when it is no
// result and every reader is a capable convolution reading it as its input, or as a same-shape
// epilogue operand of a convolution whose own output is blocked (an epilogue reads its operand at
// the positions it writes).  Conversely a convolution's output can only be blocked when its
// same-shape operands are.  Both rules are applied until nothing changes (MobileNet's inverted
// residual blocks: expand -> depthwise -> project + residual, all blocked).  A capable
// convolution whose input or output is blocked runs the blocked kernel (as a fused step, with
// an empty epilogue if it had none); the chain's first one reads NCHW, its last writes NCHW, so
// no reorder steps are needed and nothing else ever sees a blocked value.  Which steps block
// follows from structure plus the convolutions' attributes (recorded as guards).  The pass runs
// where blocked kernels pay (blocked_layout_pays: AVX-512).
#include "graph/passes.h"
#include "ops/conv_blocked.h"

namespace mnn {

void layout_pass(PassProgram& p) {
    if (!blocked_layout_pays()) return;
    const size_t n_slots = p.slot_info.size(), n_steps = p.steps.size();
    std::vector<char> capable(n_steps, 0), blocked_out(n_steps, 0), is_target(n_slots, 0);
    std::vector<int> producer(n_slots, -1);
    for (int t : p.targets) is_target[size_t(p.alias[size_t(t)])] = 1;
    // Per step: the input positions of same-shape epilogue operands.
    std::vector<std::vector<int>> full_inputs(n_steps);
    for (size_t k = 0; k < n_steps; ++k) {
        const PassStep& st = p.steps[k];
        if (st.dropped) continue;
        for (int o : st.out_slots) producer[size_t(o)] = int(k);
        if ((*p.order)[size_t(st.node)]->op != OpType::Conv2d || st.out_slots.size() != 1) continue;
        const ConvEpilogue* epi = st.epilogue >= 0 ? &p.epilogues[size_t(st.epilogue)] : nullptr;
        const size_t conv_inputs = epi ? size_t(epi->conv_inputs) : st.in_slots.size();
        std::vector<TensorInfo> infos;
        for (size_t i = 0; i < conv_inputs; ++i) infos.push_back(p.slot_info[size_t(st.in_slots[i])]);
        if (conv2d_blocked_kind(p.attrs_of(st), infos) == convgeom::BlockedConv::None) continue;
        bool ok = true;
        if (epi)
            for (const EpilogueOp& op : epi->ops) {
                if (op.operand == EpilogueOp::Channel) ok = false;
                if (op.operand == EpilogueOp::Full) full_inputs[k].push_back(op.input);
            }
        capable[k] = ok;
    }
    // Readers of each slot: (step, role) with role 0 = a capable convolution's input, 1 = a capable
    // convolution's same-shape epilogue operand, 2 = anything else.
    std::vector<std::vector<std::pair<int, int>>> readers(n_slots);
    for (size_t k = 0; k < n_steps; ++k) {
        const PassStep& st = p.steps[k];
        if (st.dropped) continue;
        for (size_t i = 0; i < st.in_slots.size(); ++i) {
            int role = 2;
            if (capable[k]) {
                if (i == 0) role = 0;
                for (int f : full_inputs[k])
                    if (size_t(f) == i) role = 1;
            }
            readers[size_t(st.in_slots[i])].push_back({int(k), role});
        }
    }
    for (size_t k = 0; k < n_steps; ++k) {
        if (!capable[k]) continue;
        const int out = p.steps[k].out_slots[0];
        bool ok = !is_target[size_t(out)] && !readers[size_t(out)].empty();
        for (const auto& r : readers[size_t(out)]) ok &= r.second != 2;
        blocked_out[k] = ok;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t k = 0; k < n_steps; ++k) {
            if (!blocked_out[k]) continue;
            bool ok = true;
            for (const auto& r : readers[size_t(p.steps[k].out_slots[0])])
                if (r.second == 1 && !blocked_out[size_t(r.first)]) ok = false;
            for (int f : full_inputs[k]) {
                const int src = producer[size_t(p.steps[k].in_slots[size_t(f)])];
                if (src < 0 || !blocked_out[size_t(src)]) ok = false;
            }
            if (!ok) {
                blocked_out[k] = 0;
                changed = true;
            }
        }
    }
    for (size_t k = 0; k < n_steps; ++k) {
        if (!capable[k]) continue;
        PassStep& st = p.steps[k];
        const int src = producer[size_t(st.in_slots[0])];
        if (!blocked_out[k] && !(src >= 0 && blocked_out[size_t(src)])) continue;
        if (st.epilogue < 0) {  // the blocked kernels run as fused steps
            ConvEpilogue none;
            none.conv_inputs = int(st.in_slots.size());
            st.epilogue = int(p.epilogues.size());
            p.epilogues.push_back(none);
        }
        if (st.attrs < 0) guard_attrs(p, st.node);
        ++p.counts.layout;
    }
    // A blocked 1x1 whose output only a blocked 3x3 depthwise reads (neither with same-shape
    // operands) runs inside it, row by row: the expanded tensor is never stored.
    for (size_t k = 0; k < n_steps; ++k) {
        PassStep& dw = p.steps[k];
        if (!capable[k] || !blocked_out[k] || !full_inputs[k].empty()) continue;
        const int src = producer[size_t(dw.in_slots[0])];
        if (src < 0 || !blocked_out[size_t(src)] || !full_inputs[size_t(src)].empty() ||
            readers[size_t(dw.in_slots[0])].size() != 1)
            continue;
        PassStep& pw = p.steps[size_t(src)];
        auto conv_infos = [&](const PassStep& st) {
            std::vector<TensorInfo> in;
            for (int i = 0; i < p.epilogues[size_t(st.epilogue)].conv_inputs; ++i)
                in.push_back(p.slot_info[size_t(st.in_slots[size_t(i)])]);
            return in;
        };
        if (!conv2d_expand_depthwise_suits(p.attrs_of(pw), conv_infos(pw), p.attrs_of(dw), conv_infos(dw))) continue;
        dw.pre_node = pw.node;
        dw.pre_attrs = pw.attrs;
        dw.pre_epilogue = pw.epilogue;
        dw.pre_inputs = int(pw.in_slots.size());
        std::vector<int> ins = pw.in_slots;
        ins.insert(ins.end(), dw.in_slots.begin() + 1, dw.in_slots.end());
        dw.in_slots = std::move(ins);
        pw.dropped = true;
    }
    for (size_t k = 0; k < n_steps; ++k)
        if (blocked_out[k]) {
            TensorInfo& info = p.slot_info[size_t(p.steps[k].out_slots[0])];
            info = blocked_info(info);
        }
}

}  // namespace mnn
