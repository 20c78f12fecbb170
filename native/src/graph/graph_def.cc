#include "graph/graph_def.h"

#include <algorithm>
#include <cstring>

#include "ops/conv_blocked.h"

namespace mnn {

constexpr size_t kMaxGraphRank = 16;

namespace {

std::string declared_str(const ValueDef& v) {
    std::string s = fmt(dtype_name(v.dtype), "[");
    for (size_t i = 0; i < v.shape.size(); ++i) s += fmt(i ? ", " : "", v.shape[i] == kDynamicDim ? "?" : std::to_string(v.shape[i]));
    return s + "]";
}

bool matches(const ValueDef& v, const TensorInfo& t) {
    if (v.dtype != t.dtype || v.shape.size() != t.shape.size()) return false;
    for (size_t i = 0; i < v.shape.size(); ++i)
        if (v.shape[i] != kDynamicDim && v.shape[i] != t.shape[i]) return false;
    return true;
}

}  // namespace

std::vector<VarPtr> run_graph(const GraphDef& g, const std::vector<VarPtr>& inputs, const std::vector<VarPtr>& states) {
    MNN_CHECK_VALUE(inputs.size() == g.inputs.size(), "model: expected ", g.inputs.size(), " inputs, got ", inputs.size());
    std::vector<VarPtr> vals(g.values.size());
    for (size_t k = 0; k < inputs.size(); ++k) {
        const ValueDef& v = g.values[size_t(g.inputs[k])];
        MNN_CHECK_TYPE(inputs[k] != nullptr, "model: input '", v.name, "' is None");
        MNN_CHECK_VALUE(matches(v, inputs[k]->info), "model: input '", v.name, "' must be ", declared_str(v), ", got ",
                        info_str(inputs[k]->info));
        vals[size_t(g.inputs[k])] = inputs[k];
    }
    for (const ConstDef& c : g.constants) vals[size_t(c.value)] = make_const(c.tensor, g.values[size_t(c.value)].name);
    MNN_CHECK_VALUE(states.empty() || states.size() == g.states.size(), "model: expected ", g.states.size(), " states");
    for (size_t k = 0; k < states.size(); ++k) vals[size_t(g.states[k].first)] = states[k];
    std::vector<VarPtr> ins;
    std::vector<TensorInfo> infos;
    for (size_t k = 0; k < g.nodes.size(); ++k) {
        const NodeDef& n = g.nodes[k];
        ins.clear();
        infos.clear();
        for (int i : n.inputs) {
            ins.push_back(vals[size_t(i)]);
            infos.push_back(vals[size_t(i)]->info);
        }
        // Check what the node would compute before anything runs (eager mode computes in apply).
        std::vector<TensorInfo> outs_info = infer(n.op, n.attrs, infos);
        MNN_CHECK_VALUE(outs_info.size() == n.outputs.size(), "model: node ", k, " (", op_def(n.op).name, ") gives ",
                        outs_info.size(), " outputs; the file declares ", n.outputs.size());
        for (size_t j = 0; j < outs_info.size(); ++j) {
            const ValueDef& v = g.values[size_t(n.outputs[j])];
            int64_t bytes = outs_info[j].numel() * int64_t(dtype_size(outs_info[j].dtype));
            MNN_CHECK_VALUE(bytes <= executor_config().max_model_value_bytes, "model: node ", k, " (", op_def(n.op).name,
                            ") computes '", v.name, "' of ", bytes, " bytes, above the runtime's limit of ",
                            executor_config().max_model_value_bytes);
            MNN_CHECK_VALUE(matches(v, outs_info[j]), "model: node ", k, " (", op_def(n.op).name, ") computes '",
                            v.name, "' as ", info_str(outs_info[j]), "; the file declares ", declared_str(v));
        }
        std::vector<VarPtr> outs = apply(n.op, ins, n.attrs);
        for (size_t j = 0; j < outs.size(); ++j) vals[size_t(n.outputs[j])] = outs[j];
    }
    std::vector<VarPtr> result;
    for (int o : g.outputs) result.push_back(vals[size_t(o)]);
    return result;
}


std::vector<TensorInfo> infer_graph(const GraphDef& g, const std::vector<TensorInfo>& inputs, const char* what) {
    MNN_CHECK_VALUE(inputs.size() == g.inputs.size(), what, ": the graph takes ", g.inputs.size(), " inputs, ",
                    inputs.size(), " given");
    std::vector<const TensorInfo*> infos(g.values.size(), nullptr);
    for (size_t k = 0; k < inputs.size(); ++k) {
        const ValueDef& v = g.values[size_t(g.inputs[k])];
        MNN_CHECK_VALUE(matches(v, inputs[k]), what, ": input '", v.name, "' must be ", declared_str(v), ", got ",
                        info_str(inputs[k]));
        infos[size_t(g.inputs[k])] = &inputs[k];
    }
    for (const ConstDef& c : g.constants) infos[size_t(c.value)] = &c.tensor.info;
    std::vector<std::vector<TensorInfo>> node_outs(g.nodes.size());
    std::vector<TensorInfo> ins;
    for (size_t k = 0; k < g.nodes.size(); ++k) {
        const NodeDef& n = g.nodes[k];
        ins.clear();
        for (int i : n.inputs) ins.push_back(*infos[size_t(i)]);
        node_outs[k] = infer(n.op, n.attrs, ins);
        MNN_CHECK_VALUE(node_outs[k].size() == n.outputs.size(), what, ": node ", k, " (", op_def(n.op).name,
                        ") gives ", node_outs[k].size(), " outputs; the graph declares ", n.outputs.size());
        for (size_t j = 0; j < n.outputs.size(); ++j) infos[size_t(n.outputs[j])] = &node_outs[k][j];
    }
    std::vector<TensorInfo> out;
    for (int o : g.outputs) out.push_back(*infos[size_t(o)]);
    return out;
}

std::vector<Tensor> run_graph_tensors(const GraphDef& g, const std::vector<Tensor>& inputs) {
    std::vector<VarPtr> ins;
    for (const Tensor& t : inputs) ins.push_back(make_const(t));
    std::vector<VarPtr> outs;
    {
        LazyScope lazy(true);
        outs = run_graph(g, ins);
    }
    evaluate(outs);
    std::vector<Tensor> r;
    for (const VarPtr& v : outs) r.push_back(value_of(v));
    return r;
}

void validate(const GraphDef& g, const char* what) {
    size_t nv = g.values.size();
    std::vector<int> defined(nv, 0);  // 0: not yet, 1: input, 2: constant, 3: node output
    auto in_range = [&](int i, const char* kind) {
        MNN_CHECK_VALUE(i >= 0 && size_t(i) < nv, what, ": ", kind, " index ", i, " out of range (", nv, " values)");
    };
    for (const ValueDef& v : g.values) {
        MNN_CHECK_VALUE(v.shape.size() <= kMaxGraphRank, what, ": value '", v.name, "' has rank ", v.shape.size());
        for (int64_t d : v.shape) MNN_CHECK_VALUE(d >= kDynamicDim, what, ": value '", v.name, "' has dimension ", d);
    }
    for (int i : g.inputs) {
        in_range(i, "input");
        MNN_CHECK_VALUE(!defined[size_t(i)], what, ": value '", g.values[size_t(i)].name, "' is an input twice");
        defined[size_t(i)] = 1;
    }
    for (const ConstDef& c : g.constants) {
        in_range(c.value, "constant");
        const ValueDef& v = g.values[size_t(c.value)];
        MNN_CHECK_VALUE(!defined[size_t(c.value)], what, ": constant '", v.name, "' is also an input or another constant");
        defined[size_t(c.value)] = 2;
        MNN_CHECK_VALUE(c.tensor.defined() && c.tensor.dtype() == v.dtype &&
                        std::equal(v.shape.begin(), v.shape.end(), c.tensor.shape().begin(), c.tensor.shape().end()),
                        what, ": constant '", v.name, "' does not match its value's dtype and shape");
    }
    for (size_t k = 0; k < g.nodes.size(); ++k) {
        const NodeDef& n = g.nodes[k];
        const OpDef& d = op_def(n.op);
        MNN_CHECK_VALUE(d.n_inputs < 0 ? !n.inputs.empty() : int(n.inputs.size()) == d.n_inputs,
                        what, ": node ", k, " (", d.name, ") has ", n.inputs.size(), " inputs; the op takes ", d.n_inputs);
        MNN_CHECK_VALUE(!n.outputs.empty() && (d.n_outputs < 0 || int(n.outputs.size()) == d.n_outputs), what, ": node ",
                        k, " (", d.name, ") has ", n.outputs.size(), " outputs; the op gives ", d.n_outputs);
        for (int i : n.inputs) {
            in_range(i, "node input");
            MNN_CHECK_VALUE(defined[size_t(i)], what, ": node ", k, " (", d.name, ") reads value '",
                            g.values[size_t(i)].name, "' before it is defined");
        }
        for (int o : n.outputs) {
            in_range(o, "node output");
            MNN_CHECK_VALUE(!defined[size_t(o)], what, ": node ", k, " (", d.name, ") redefines value '",
                            g.values[size_t(o)].name, "'");
            defined[size_t(o)] = 3;
        }
    }
    for (int o : g.outputs) {
        in_range(o, "output");
        MNN_CHECK_VALUE(defined[size_t(o)], what, ": output '", g.values[size_t(o)].name, "' is never computed");
    }
    for (auto [s, o] : g.states) {
        in_range(s, "state");
        in_range(o, "state output");
        const ValueDef &sv = g.values[size_t(s)], &ov = g.values[size_t(o)];
        MNN_CHECK_VALUE(defined[size_t(s)] == 2, what, ": state '", sv.name, "' is not a constant");
        MNN_CHECK_VALUE(std::find(g.outputs.begin(), g.outputs.end(), o) != g.outputs.end(), what, ": the new value of state '",
                        sv.name, "' is not a graph output");
        MNN_CHECK_VALUE(sv.dtype == ov.dtype && sv.shape == ov.shape, what, ": state '", sv.name,
                        "' and its new value '", ov.name, "' differ in dtype or shape");
    }
}


std::vector<Tensor> PreparedGraph::run(const std::vector<Tensor>& values, size_t n_states) {
    const ExecutorConfig& cfg = executor_config();
    Key sig{{}, cfg.passes, cfg.fuse_elementwise, cfg.plan_memory, cfg.backend.get(), blocked_layout_pays()};
    for (const Tensor& t : values) sig.infos.push_back(t.info);
    for (auto& [s, p] : prepared_)
        if (s == sig) return p->run(values);
    std::vector<VarPtr> ins, st;
    for (size_t k = 0; k < values.size(); ++k) (k + n_states < values.size() ? ins : st).push_back(make_const(values[k]));
    std::vector<VarPtr> outs;
    {
        LazyScope lazy(true);
        outs = run_graph(*g_, ins, st);
    }
    ins.insert(ins.end(), st.begin(), st.end());
    if (prepared_.size() >= kMaxPrepared) prepared_.erase(prepared_.begin());
    prepared_.emplace_back(std::move(sig), std::make_unique<PreparedRun>(std::move(outs), std::move(ins)));
    return prepared_.back().second->run(values);
}

}  // namespace mnn
