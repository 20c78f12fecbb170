#include "runtime/program.h"

namespace mnn::mnnx {

namespace {

std::string declared_str(const ValueDef& v) {
    std::string s = fmt(dtype_name(v.dtype), "[");
    for (size_t i = 0; i < v.shape.size(); ++i) s += fmt(i ? ", " : "", v.shape[i] == kDynamic ? "?" : std::to_string(v.shape[i]));
    return s + "]";
}

bool matches(const ValueDef& v, const TensorInfo& t) {
    if (v.dtype != t.dtype || v.shape.size() != t.shape.size()) return false;
    for (size_t i = 0; i < v.shape.size(); ++i)
        if (v.shape[i] != kDynamic && v.shape[i] != t.shape[i]) return false;
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

}  // namespace mnn::mnnx
