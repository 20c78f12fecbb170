#include "graph/expr.h"

#include <algorithm>

namespace mnn {

ExecutorConfig& executor_config() {
    static ExecutorConfig cfg;
    return cfg;
}

Attrs make_attrs(OpType op, std::vector<AttrValue> values) {
    const OpDef& d = op_def(op);
    Attrs a;
    a.op = op;
    a.schema = &d.schema;
    a.op_name = d.name;
    a.values = std::move(values);
    return a;
}

const Attrs& empty_attrs(OpType op) {
    static std::vector<Attrs> table = [] {
        std::vector<Attrs> t;
        for (const OpDef& d : all_ops()) {
            Attrs a;
            a.op = d.type;
            a.schema = &d.schema;
            a.op_name = d.name;
            t.push_back(a);
        }
        return t;
    }();
    return table[int(op)];
}

Node::~Node() {
    std::vector<std::shared_ptr<Node>> pending;
    auto harvest = [&pending](std::vector<VarPtr>& ins) {
        for (VarPtr& v : ins)
            if (v && v.use_count() == 1 && v->node && v->node.use_count() == 1) pending.push_back(std::move(v->node));
        ins.clear();
    };
    harvest(inputs);
    while (!pending.empty()) {
        std::shared_ptr<Node> n = std::move(pending.back());
        pending.pop_back();
        harvest(n->inputs);  // n now dies without recursing
    }
}

VarPtr make_const(Tensor t, std::string name) {
    auto v = std::make_shared<VarImpl>();
    v->info = t.info;
    v->value = std::move(t);
    v->kind = VarKind::Const;
    v->name = std::move(name);
    return v;
}

VarPtr make_placeholder(TensorInfo info, std::string name) {
    check_shape(info.shape, info.dtype, "placeholder");
    auto v = std::make_shared<VarImpl>();
    v->info = std::move(info);
    v->kind = VarKind::Placeholder;
    v->name = std::move(name);
    return v;
}

// Reshape of a computed value shares its bytes instead of copying.
void run_node(OpType op, const Attrs& attrs, const std::vector<Tensor>& ins, std::vector<Tensor>& outs,
                     const std::vector<TensorInfo>& infos) {
    if (is_free_view(op)) { outs[0] = ins[0].view(infos[0].shape); return; }
    for (size_t i = 0; i < infos.size(); ++i)
        if (!outs[i].defined()) outs[i] = Tensor(infos[i]);  // (the executor may place some in its arena)
    run_kernel(op, attrs, ins, outs);
}

namespace {

// What apply's rule reads of the inputs: their infos (into `infos`), and whether all are computed,
// any requires gradients, any depends on a placeholder.
struct InputFacts {
    bool all_computed = true, rg = false, fp = false;
};

InputFacts input_facts(OpType op, const std::vector<VarPtr>& inputs, std::vector<TensorInfo>& infos) {
    InputFacts f;
    infos.clear();
    for (const VarPtr& v : inputs) {
        if (!v) throw TypeError(fmt(op_def(op).name, ": an input is None"));
        infos.push_back(v->info);
        f.all_computed &= v->computed();
        f.rg |= v->requires_grad;
        f.fp |= v->from_placeholder || v->kind == VarKind::Placeholder;
    }
    return f;
}

// The output Vars of `op` on `inputs`, with its node when `keep` (history is kept), holding
// `results` (one per output) when given.
std::vector<VarPtr> make_outputs(OpType op, const std::vector<VarPtr>& inputs, const Attrs& attrs,
                                 const std::vector<TensorInfo>& out_infos, const InputFacts& f, bool keep,
                                 std::vector<Tensor>* results) {
    std::shared_ptr<Node> node;
    if (keep) {
        node = std::make_shared<Node>();
        node->op = op;
        node->attrs = attrs;
        node->inputs = inputs;
        node->output_infos = out_infos;
    }
    std::vector<VarPtr> outs(out_infos.size());
    for (size_t i = 0; i < outs.size(); ++i) {
        auto v = std::make_shared<VarImpl>();
        v->info = out_infos[i];
        v->kind = VarKind::Op;
        v->requires_grad = f.rg;
        v->from_placeholder = f.fp;
        v->epoch = executor_config().placeholder_epoch;
        v->node = node;
        v->output_index = int(i);
        if (results) v->value = std::move((*results)[i]);
        outs[i] = std::move(v);
    }
    if (node)
        for (auto& o : outs) node->outputs.push_back(o);
    return outs;
}

}  // namespace

std::vector<VarPtr> apply(OpType op, const std::vector<VarPtr>& inputs, const Attrs& attrs) {
    // Scratch reused across calls: eager per-op overhead is dominated by allocations.
    thread_local std::vector<TensorInfo> in_infos;
    const InputFacts f = input_facts(op, inputs, in_infos);
    std::vector<TensorInfo> out_infos = infer(op, attrs, in_infos);
    const bool eager = f.all_computed && !executor_config().lazy;
    std::vector<Tensor> results;
    if (eager) {
        thread_local std::vector<Tensor> ins;
        ins.clear();
        for (const VarPtr& v : inputs) ins.push_back(v->value);
        results.resize(out_infos.size());
        run_node(op, attrs, ins, results, out_infos);
        ins.clear();  // drop references to input storage now
    }
    return make_outputs(op, inputs, attrs, out_infos, f, !eager || f.rg || f.fp, eager ? &results : nullptr);
}

VarPtr apply1(OpType op, const std::vector<VarPtr>& inputs, const Attrs& attrs) {
    auto outs = apply(op, inputs, attrs);
    if (outs.size() != 1) throw ValueError(fmt(op_def(op).name, ": expected one output"));
    return outs[0];
}

std::vector<VarPtr> apply_computed(OpType op, const std::vector<VarPtr>& inputs, const Attrs& attrs,
                                   std::vector<Tensor> values) {
    std::vector<TensorInfo> in_infos;
    const InputFacts f = input_facts(op, inputs, in_infos);
    std::vector<TensorInfo> out_infos = infer(op, attrs, in_infos);
    if (values.size() != out_infos.size())
        throw ValueError(fmt(op_def(op).name, ": ", values.size(), " values given for ", out_infos.size(), " outputs"));
    for (size_t i = 0; i < values.size(); ++i)
        if (!values[i].defined() || values[i].dtype() != out_infos[i].dtype || values[i].shape() != out_infos[i].shape)
            throw ValueError(fmt(op_def(op).name, ": value ", i, " is ",
                                 values[i].defined() ? info_str(values[i].info) : std::string("undefined"),
                                 ", the op gives ", info_str(out_infos[i])));
    const bool keep = f.rg || f.fp || !f.all_computed || executor_config().lazy;  // (apply's rule)
    return make_outputs(op, inputs, attrs, out_infos, f, keep, &values);
}

const Tensor& value_of(const VarPtr& v) {
    if (!v->computed()) evaluate({v});
    return v->value;
}

}  // namespace mnn
