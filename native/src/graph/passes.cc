// Graph passes over a lazy plan's schedule: see passes.h.
#include "graph/passes.h"

#include <cstring>
#include <unordered_map>

namespace mnn {

namespace {

const char* const kPassNames[kNumPasses] = {"simplify", "cse", "dce", "conv_epilogue", "matmul_epilogue", "layout"};

// The slot that holds `s`'s value.
int resolve(const PassProgram& p, int s) {
    while (p.alias[size_t(s)] != s) s = p.alias[size_t(s)];
    return s;
}

void resolve_inputs(const PassProgram& p, PassStep& st) {
    for (int& i : st.in_slots) i = resolve(p, i);
}

const Node* node_of(const PassProgram& p, const PassStep& st) { return (*p.order)[size_t(st.node)]; }

// Per slot: the index of the step that writes it, or -1 (leaves).
std::vector<int> producers(const PassProgram& p) {
    std::vector<int> prod(p.slot_info.size(), -1);
    for (size_t k = 0; k < p.steps.size(); ++k)
        for (int o : p.steps[k].out_slots) prod[size_t(o)] = int(k);
    return prod;
}

// The step's outputs hold the values of `srcs` (one per output): it is dropped.
void alias_outputs(PassProgram& p, PassStep& st, const std::vector<int>& srcs) {
    for (size_t o = 0; o < st.out_slots.size(); ++o) p.alias[size_t(st.out_slots[o])] = resolve(p, srcs[o]);
    st.dropped = true;
}


uint64_t element_bits(const Tensor& t) {  // the first element's bytes (little-endian in the low bytes)
    uint64_t b = 0;
    std::memcpy(&b, t.raw(), dtype_size(t.dtype()));
    return b;
}

// Ops whose attributes follow from their input and output infos (kernels read only those).
bool infos_decide_attrs(OpType op) {
    return op == OpType::Reshape || op == OpType::Cast || op == OpType::BroadcastTo;
}

std::vector<int64_t> normalized_perm(const std::vector<int64_t>& perm, size_t ndim) {
    std::vector<int64_t> out(perm);
    for (int64_t& a : out)
        if (a < 0) a += int64_t(ndim);
    return out;
}

// ---- algebraic identities with a one-element constant ---------------------------------------------

enum class Identity : uint8_t { One, AddZero, SubZero };

// The bytes of the constant that leaves x unchanged, bit for bit: x*1 and x/1 (NaN payloads
// aside), x + (-0.0) (x + 0.0 turns -0.0 into +0.0, so it is not an identity for floats),
// x - (+0.0); integers: 1 and 0.
bool identity_bits(DType t, Identity id, uint64_t* bits) {
    if (t == DType::Bool) return false;
    if (id == Identity::One) {
        switch (t) {
            case DType::Float16: *bits = 0x3C00; break;
            case DType::BFloat16: *bits = 0x3F80; break;
            case DType::Float32: *bits = 0x3F800000u; break;
            case DType::Float64: *bits = 0x3FF0000000000000ull; break;
            default: *bits = 1; break;
        }
        return true;
    }
    if (id == Identity::AddZero && is_float(t)) {
        *bits = dtype_size(t) == 2 ? 0x8000 : dtype_size(t) == 4 ? 0x80000000u : 0x8000000000000000ull;
        return true;
    }
    *bits = 0;
    return true;
}

// The leaf behind `slot` when it is one value: a one-element leaf, or a reshape/broadcast of one.
int scalar_leaf(const PassProgram& p, int slot, const std::vector<int>& prod) {
    if (slot >= p.n_leaves()) {
        int k = prod[size_t(slot)];
        if (k < 0 || p.steps[size_t(k)].dropped) return -1;
        OpType op = node_of(p, p.steps[size_t(k)])->op;
        if (op != OpType::Reshape && op != OpType::BroadcastTo) return -1;
        slot = resolve(p, p.steps[size_t(k)].in_slots[0]);
        if (slot >= p.n_leaves()) return -1;
    }
    if (p.slot_info[size_t(slot)].numel() != 1 || !(*p.leaves)[size_t(slot)]->value.defined()) return -1;
    return slot;
}

// x op c == x with c a constant (the result has x's shape and dtype): the slot of x, else -1.
int binary_identity(PassProgram& p, const PassStep& st, const TensorInfo& out, const std::vector<int>& prod) {
    const OpType op = node_of(p, st)->op;
    auto match = [&](int x, int c, Identity id) {
        if (!(p.slot_info[size_t(x)] == out)) return false;
        int leaf = scalar_leaf(p, c, prod);
        uint64_t want = 0;
        if (leaf < 0 || !identity_bits(out.dtype, id, &want)) return false;
        uint64_t have = element_bits((*p.leaves)[size_t(leaf)]->value);
        if (have != want) return false;
        for (const Guard& g : p.guards)
            if (g.kind == Guard::LeafBits && g.a == leaf) return true;
        p.guards.push_back({Guard::LeafBits, leaf, 0, have});
        return true;
    };
    const int a = st.in_slots[0], b = st.in_slots[1];
    switch (op) {
        case OpType::Mul:
            if (match(a, b, Identity::One)) return a;
            if (match(b, a, Identity::One)) return b;
            return -1;
        case OpType::Div: return match(a, b, Identity::One) ? a : -1;
        case OpType::Add:
            if (match(a, b, Identity::AddZero)) return a;
            if (match(b, a, Identity::AddZero)) return b;
            return -1;
        case OpType::Sub: return match(a, b, Identity::SubZero) ? a : -1;
        default: return -1;
    }
}

}  // namespace

const char* pass_name(Pass p) { return kPassNames[int(p)]; }

bool pass_from_name(const std::string& name, Pass* out) {
    for (int i = 0; i < kNumPasses; ++i)
        if (name == kPassNames[i]) { *out = Pass(i); return true; }
    return false;
}

bool attrs_equal(const Attrs& a, const Attrs& b) {
    if (a.values.size() != b.values.size()) return false;
    for (size_t i = 0; i < a.values.size(); ++i) {
        const AttrValue& x = a.values[i];
        const AttrValue& y = b.values[i];
        if (x.index() != y.index()) return false;
        if (const double* d = std::get_if<double>(&x)) {
            if (std::memcmp(d, &std::get<double>(y), sizeof(double)) != 0) return false;
        } else if (const auto* v = std::get_if<std::vector<double>>(&x)) {
            const auto& w = std::get<std::vector<double>>(y);
            if (v->size() != w.size() || (!v->empty() && std::memcmp(v->data(), w.data(), v->size() * sizeof(double)) != 0))
                return false;
        } else if (x != y) {
            return false;
        }
    }
    return true;
}

PassProgram make_pass_program(const std::vector<Node*>& order, const std::vector<VarImpl*>& leaves,
                              const std::unordered_map<VarImpl*, int>& leaf_index,
                              const std::unordered_map<Node*, int>& node_index, const std::vector<int>& out_base,
                              std::vector<int> targets) {
    PassProgram p;
    p.order = &order;
    p.leaves = &leaves;
    for (VarImpl* l : leaves) p.slot_info.push_back(l->info);
    for (Node* n : order)
        for (const TensorInfo& o : n->output_infos) p.slot_info.push_back(o);
    p.steps.resize(order.size());
    for (size_t k = 0; k < order.size(); ++k) {
        PassStep& s = p.steps[k];
        s.node = int(k);
        for (const VarPtr& in : order[k]->inputs) {
            auto it = leaf_index.find(in.get());
            s.in_slots.push_back(it != leaf_index.end() ? it->second
                                                        : out_base[size_t(node_index.at(in->node.get()))] + in->output_index);
        }
        for (size_t o = 0; o < order[k]->output_infos.size(); ++o) s.out_slots.push_back(out_base[k] + int(o));
    }
    p.alias.resize(p.slot_info.size());
    for (size_t s = 0; s < p.alias.size(); ++s) p.alias[s] = int(s);
    p.targets = std::move(targets);
    return p;
}

// ---- simplify ---------------------------------------------------------------------------------------

void simplify_pass(PassProgram& p) {
    const std::vector<int> prod = producers(p);
    for (PassStep& st : p.steps) {
        if (st.dropped) continue;
        resolve_inputs(p, st);
        const Node* n = node_of(p, st);
        if (n->output_infos.size() != 1 || st.in_slots.empty()) continue;
        const TensorInfo& out = n->output_infos[0];
        auto producer_op = [&](int slot, OpType op) -> PassStep* {  // the live step of `op` writing `slot`
            int k = prod[size_t(slot)];
            if (k < 0 || p.steps[size_t(k)].dropped || node_of(p, p.steps[size_t(k)])->op != op) return nullptr;
            return &p.steps[size_t(k)];
        };
        int src = -1;  // the slot that already holds this step's value
        switch (n->op) {
            case OpType::Reshape: {
                if (PassStep* inner = producer_op(st.in_slots[0], OpType::Reshape)) {  // reshape(reshape(x)) = reshape(x)
                    st.in_slots[0] = resolve(p, inner->in_slots[0]);
                    ++p.counts.simplify;
                }
                if (p.slot_info[size_t(st.in_slots[0])] == out) src = st.in_slots[0];
                break;
            }
            case OpType::Transpose: {
                const size_t nd = out.shape.size();
                std::vector<int64_t> perm = normalized_perm(p.attrs_of(st).ints("perm"), nd);
                if (PassStep* inner = producer_op(st.in_slots[0], OpType::Transpose)) {
                    // transpose(transpose(x, p1), p2) = transpose(x, q) with q[i] = p1[p2[i]]
                    std::vector<int64_t> p1 = normalized_perm(p.attrs_of(*inner).ints("perm"), nd);
                    std::vector<int64_t> q(nd);
                    for (size_t i = 0; i < nd; ++i) q[i] = p1[size_t(perm[i])];
                    if (st.attrs < 0) guard_attrs(p, st.node);
                    if (inner->attrs < 0) guard_attrs(p, inner->node);
                    Attrs made = p.attrs_of(st);
                    made.values[size_t(made.index("perm"))] = q;
                    p.attrs.push_back(std::move(made));
                    st.attrs = int(p.attrs.size()) - 1;
                    st.in_slots[0] = resolve(p, inner->in_slots[0]);
                    perm = std::move(q);
                    ++p.counts.simplify;
                }
                bool identity = true;
                for (size_t i = 0; i < nd; ++i) identity &= perm[i] == int64_t(i);
                if (identity && p.slot_info[size_t(st.in_slots[0])] == out) {
                    if (st.attrs < 0) guard_attrs(p, st.node);
                    src = st.in_slots[0];
                }
                break;
            }
            case OpType::Cast:
                if (p.slot_info[size_t(st.in_slots[0])] == out) src = st.in_slots[0];
                break;
            case OpType::Mul: case OpType::Div: case OpType::Add: case OpType::Sub:
                src = binary_identity(p, st, out, prod);
                break;
            default: break;
        }
        if (src >= 0) {
            alias_outputs(p, st, {src});
            ++p.counts.simplify;
        }
    }
}

// ---- common subexpressions ----------------------------------------------------------------------------

void cse_pass(PassProgram& p) {
    std::unordered_map<std::string, std::vector<int>> seen;  // (op, input slots) -> live steps
    std::string key;
    for (size_t k = 0; k < p.steps.size(); ++k) {
        PassStep& st = p.steps[k];
        if (st.dropped) continue;
        resolve_inputs(p, st);
        const Node* n = node_of(p, st);
        if (op_def(n->op).category == Category::Random || st.in_slots.empty()) continue;  // draws never merge
        key.assign(reinterpret_cast<const char*>(&n->op), sizeof(n->op));
        key.append(reinterpret_cast<const char*>(st.in_slots.data()), st.in_slots.size() * sizeof(int));
        std::vector<int>& cands = seen[key];
        bool merged = false;
        for (int c : cands) {
            PassStep& first = p.steps[size_t(c)];
            if (node_of(p, first)->output_infos != n->output_infos) continue;
            const bool by_attrs = !infos_decide_attrs(n->op) && !n->attrs.values.empty();
            if (by_attrs) {
                if (!attrs_equal(p.attrs_of(first), p.attrs_of(st))) continue;
                if (first.attrs < 0 && st.attrs < 0) p.guards.push_back({Guard::SameAttrs, first.node, st.node, 0});
                else {
                    if (first.attrs < 0) guard_attrs(p, first.node);
                    if (st.attrs < 0) guard_attrs(p, st.node);
                }
            }
            alias_outputs(p, st, first.out_slots);
            ++p.counts.cse;
            merged = true;
            break;
        }
        if (!merged) cands.push_back(int(k));
    }
}

// ---- dead steps --------------------------------------------------------------------------------------------

void dce_pass(PassProgram& p) {
    std::vector<char> needed(p.slot_info.size(), 0);
    for (int t : p.targets) needed[size_t(resolve(p, t))] = 1;
    for (size_t k = p.steps.size(); k-- > 0;) {
        PassStep& st = p.steps[k];
        if (st.dropped) continue;
        resolve_inputs(p, st);
        bool live = false;
        for (int o : st.out_slots) live |= needed[size_t(o)] != 0;
        if (!live) {
            st.dropped = true;
            ++p.counts.dce;
            continue;
        }
        for (int i : st.in_slots) needed[size_t(i)] = 1;
    }
}

void run_passes(PassProgram& p, uint32_t enabled) {
    if (enabled & pass_bit(Pass::Simplify)) simplify_pass(p);
    if (enabled & pass_bit(Pass::CSE)) cse_pass(p);
    if (enabled & pass_bit(Pass::DCE)) dce_pass(p);
    for (size_t s = 0; s < p.alias.size(); ++s) p.alias[s] = resolve(p, int(s));
    for (PassStep& st : p.steps) resolve_inputs(p, st);
    if (enabled & pass_bit(Pass::ConvEpilogue)) conv_epilogue_pass(p);  // (on resolved inputs)
    if (enabled & pass_bit(Pass::MatMulEpilogue)) matmul_epilogue_pass(p);
    if (enabled & pass_bit(Pass::Layout)) layout_pass(p);  // (after the epilogues: it sees the fused chains)
    p.counts.guards = int64_t(p.guards.size());
}

void guard_attrs(PassProgram& p, int node) {
    for (const Guard& g : p.guards)
        if (g.kind == Guard::AttrsAre && g.a == node) return;
    p.attrs.push_back((*p.order)[size_t(node)]->attrs);
    p.guards.push_back({Guard::AttrsAre, node, int(p.attrs.size()) - 1, 0});
}

bool guards_hold(const std::vector<Guard>& guards, const std::vector<Attrs>& attrs, const std::vector<Node*>& order,
                 const std::vector<VarImpl*>& leaves) {
    for (const Guard& g : guards) {
        switch (g.kind) {
            case Guard::SameAttrs:
                if (!attrs_equal(order[size_t(g.a)]->attrs, order[size_t(g.b)]->attrs)) return false;
                break;
            case Guard::AttrsAre:
                if (!attrs_equal(order[size_t(g.a)]->attrs, attrs[size_t(g.b)])) return false;
                break;
            case Guard::LeafBits:
                if (element_bits(leaves[size_t(g.a)]->value) != g.bits) return false;
                break;
        }
    }
    return true;
}

}  // namespace mnn
