// Bindings of the .mnnx format: mnnx_save (a traced graph to a file) and
// MnnxModel (a loaded file run on Vars, in the current eager/lazy mode).
#include <nanobind/stl/pair.h>
#include <nanobind/stl/tuple.h>

#include "format/mnnx.h"
#include "python/bind.h"
#include "graph/graph_def.h"

namespace mnnpy {

namespace {

mnn::Encoding parse_encoding(const std::string& s) {
    if (s == "raw") return mnn::Encoding::Raw;
    if (s == "float16") return mnn::Encoding::Float16;
    if (s == "int8") return mnn::Encoding::Int8;
    throw mnn::ValueError(mnn::fmt("mnnx: unknown weight encoding '", s, "' (raw, float16 or int8)"));
}

nb::list value_infos(const mnn::GraphDef& g, const std::vector<int>& ids) {
    nb::list l;
    for (int i : ids) {
        const auto& v = g.values[size_t(i)];
        l.append(nb::make_tuple(v.name, mnn::dtype_name(v.dtype), v.shape));
    }
    return l;
}

mnn::GraphDef graph_from_python(nb::list values, std::vector<int> inputs, std::vector<int> outputs,
                                nb::list constants, nb::list nodes) {
    mnn::GraphDef g;
    for (nb::handle v : values) {
        auto t = nb::cast<nb::tuple>(v);
        g.values.push_back({nb::cast<std::string>(t[0]), parse_dtype(t[1]), nb::cast<std::vector<int64_t>>(t[2])});
    }
    g.inputs = std::move(inputs);
    g.outputs = std::move(outputs);
    for (nb::handle c : constants) {
        auto t = nb::cast<nb::tuple>(c);
        mnn::ConstDef cd;
        cd.value = nb::cast<int>(t[0]);
        cd.tensor = mnn::value_of(nb::cast<const Var&>(t[1]).p);
        cd.encoding = t.size() > 2 ? parse_encoding(nb::cast<std::string>(t[2])) : mnn::Encoding::Raw;
        g.constants.push_back(std::move(cd));
    }
    for (nb::handle n : nodes) {
        auto t = nb::cast<nb::tuple>(n);
        mnn::NodeDef nd;
        nd.op = parse_op(t[0]);
        nd.attrs = parse_attrs(nd.op, nb::cast<nb::dict>(t[1]));
        nd.inputs = nb::cast<std::vector<int>>(t[2]);
        nd.outputs = nb::cast<std::vector<int>>(t[3]);
        g.nodes.push_back(std::move(nd));
    }
    return g;
}

nb::dict describe(const mnn::GraphDef& g) {
    nb::dict d;
    nb::list values, constants, nodes;
    for (const auto& v : g.values) values.append(nb::make_tuple(v.name, mnn::dtype_name(v.dtype), v.shape));
    for (const auto& c : g.constants) constants.append(nb::make_tuple(c.value, Var{mnn::make_const(c.tensor)}));
    for (const auto& n : g.nodes)
        nodes.append(nb::make_tuple(mnn::op_def(n.op).name, attrs_to_dict(n.attrs), n.inputs, n.outputs));
    d["values"] = values;
    d["inputs"] = g.inputs;
    d["outputs"] = g.outputs;
    d["constants"] = constants;
    d["nodes"] = nodes;
    return d;
}

struct MnnxModel {
    mnn::mnnx::ModelDef def;
    std::vector<VarPtr> states;
    std::unique_ptr<mnn::PreparedGraph> prepared;  // made on the first call on computed inputs

    const mnn::GraphDef& graph() const { return def.graph; }

    std::vector<Var> run(nb::handle inputs) {
        const auto& g = graph();
        std::vector<VarPtr> ins = to_vars(inputs, "model");
        // Inference on values (no gradients, no placeholders: nothing to record): the plan prepared
        // for this input signature runs at once, in any mode, as the runtime's Model does (and MNN's
        // loaded modules); the outputs are values.
        bool values_only = g.states.empty();
        for (const VarPtr& v : ins)
            values_only &= v->computed() && !v->requires_grad && !v->from_placeholder &&
                           v->kind != mnn::VarKind::Placeholder;
        if (values_only) {
            std::vector<mnn::Tensor> vals;
            for (const VarPtr& v : ins) vals.push_back(v->value);
            if (!prepared) prepared = std::make_unique<mnn::PreparedGraph>(&def.graph);
            std::vector<Var> r;
            for (mnn::Tensor& t : prepared->run(vals, 0)) r.push_back(Var{mnn::make_const(std::move(t))});
            return r;
        }
        std::vector<VarPtr> outs = mnn::run_graph(g, ins, states);
        if (!g.states.empty()) {  // a training step: compute, then keep the new state values
            mnn::evaluate(outs);
            for (size_t k = 0; k < g.states.size(); ++k)
                for (size_t j = 0; j < g.outputs.size(); ++j)
                    if (g.outputs[j] == g.states[k].second) states[k] = mnn::make_const(mnn::value_of(outs[j]));
        }
        std::vector<Var> r;
        for (auto& v : outs) r.push_back(Var{v});
        return r;
    }
};

}  // namespace

void bind_mnnx(nb::module_& m) {
    m.def("set_max_model_value_bytes", [](int64_t n) { mnn::executor_config().max_model_value_bytes = n; },
          "Loaded models refuse to compute a value larger than this (default 16 GiB).");
    m.def("mnnx_save", [](const std::string& path, const std::string& producer,
                          std::vector<std::pair<std::string, std::string>> metadata, nb::list values,
                          std::vector<int> inputs, std::vector<int> outputs, nb::list constants,
                          std::vector<std::pair<int, int>> states, nb::list nodes) {
        mnn::mnnx::ModelDef def;
        def.producer = producer;
        def.metadata = std::move(metadata);
        def.graph = graph_from_python(values, std::move(inputs), std::move(outputs), constants, nodes);
        def.graph.states = std::move(states);
        mnn::mnnx::save(def, path);
    }, "Writes an .mnnx file from a traced graph (mnn_nn.export does this).");

    nb::class_<SubGraph>(m, "SubGraph", "A graph body of a control-flow op (If/Loop attribute); immutable.")
        .def_prop_ro("inputs", [](const SubGraph& s) { return value_infos(*s.g, s.g->inputs); })
        .def_prop_ro("outputs", [](const SubGraph& s) { return value_infos(*s.g, s.g->outputs); })
        .def("describe", [](const SubGraph& s) { return describe(*s.g); },
             "The graph as plain data: {values: [(name, dtype, shape)], inputs, outputs, "
             "constants: [(value, Var)], nodes: [(op, attrs, inputs, outputs)]}.")
        .def("run", [](const SubGraph& s, nb::handle inputs) {
            std::vector<VarPtr> outs = mnn::run_graph(*s.g, to_vars(inputs, "subgraph"), {});
            std::vector<Var> r;
            for (auto& v : outs) r.push_back(Var{v});
            return r;
        }, "Runs the graph on Vars (in the current eager/lazy mode; F.compile with dynamic_axes runs its "
           "program this way); returns the outputs.")
        .def("__repr__", [](const SubGraph& s) {
            return mnn::fmt("SubGraph(", s.g->inputs.size(), " inputs, ", s.g->nodes.size(), " nodes, ",
                            s.g->outputs.size(), " outputs)");
        });
    m.def("subgraph", [](nb::list values, std::vector<int> inputs, std::vector<int> outputs, nb::list constants,
                         nb::list nodes) {
        mnn::GraphDef g = graph_from_python(values, std::move(inputs), std::move(outputs), constants, nodes);
        mnn::validate(g, "subgraph");
        return SubGraph{std::make_shared<const mnn::GraphDef>(std::move(g))};
    }, "Builds a control-flow body from the same lists as mnnx_save (see mnn_expr.graph_capture).");

    nb::class_<MnnxModel>(m, "MnnxModel", "A loaded .mnnx model (mnn_nn.load wraps it).")
        .def("__init__", [](MnnxModel* self, const std::string& path) {
            new (self) MnnxModel{mnn::mnnx::load(path), {}, nullptr};
            const auto& g = self->graph();
            for (auto [s, o] : g.states)
                for (const auto& c : g.constants)
                    if (c.value == s) self->states.push_back(mnn::make_const(c.tensor, g.values[size_t(s)].name));
        })
        .def_static("from_bytes", [](nb::bytes data) {
            auto buf = std::make_shared<std::string>(data.c_str(), data.size());
            auto* m = new MnnxModel{mnn::mnnx::parse(reinterpret_cast<const uint8_t*>(buf->data()), buf->size(), buf), {}};
            return m;
        }, nb::rv_policy::take_ownership, "Parses an .mnnx file's bytes (validating them).")
        .def_prop_ro("inputs", [](const MnnxModel& s) { return value_infos(s.graph(), s.graph().inputs); })
        .def_prop_ro("outputs", [](const MnnxModel& s) { return value_infos(s.graph(), s.graph().outputs); })
        .def_prop_ro("producer", [](const MnnxModel& s) { return s.def.producer; })
        .def_prop_ro("metadata", [](const MnnxModel& s) { return s.def.metadata; })
        .def_prop_ro("n_nodes", [](const MnnxModel& s) { return s.graph().nodes.size(); })
        .def_prop_ro("states", [](const MnnxModel& s) {
            std::vector<Var> r;
            for (auto& v : s.states) r.push_back(Var{v});
            return r;
        })
        .def("run", &MnnxModel::run, "Runs the graph on Vars (in the current eager/lazy mode); returns the outputs.");
}

}  // namespace mnnpy
