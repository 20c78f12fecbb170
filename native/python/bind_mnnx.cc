// Bindings of the .mnnx format: mnnx_save (a traced graph to a file) and
// MnnxModel (a loaded file run on Vars, in the current eager/lazy mode).
#include <nanobind/stl/pair.h>
#include <nanobind/stl/tuple.h>

#include "format/mnnx.h"
#include "python/bind.h"
#include "runtime/program.h"

namespace mnnpy {

namespace {

mnn::mnnx::Encoding parse_encoding(const std::string& s) {
    if (s == "raw") return mnn::mnnx::Encoding::Raw;
    if (s == "float16") return mnn::mnnx::Encoding::Float16;
    if (s == "int8") return mnn::mnnx::Encoding::Int8;
    throw mnn::ValueError(mnn::fmt("mnnx: unknown weight encoding '", s, "' (raw, float16 or int8)"));
}

nb::list value_infos(const mnn::mnnx::GraphDef& g, const std::vector<int>& ids) {
    nb::list l;
    for (int i : ids) {
        const auto& v = g.values[size_t(i)];
        l.append(nb::make_tuple(v.name, mnn::dtype_name(v.dtype), v.shape));
    }
    return l;
}

struct MnnxModel {
    mnn::mnnx::ModelDef def;
    std::vector<VarPtr> states;

    const mnn::mnnx::GraphDef& graph() const { return def.graphs[0]; }

    std::vector<Var> run(nb::handle inputs) {
        const auto& g = graph();
        std::vector<VarPtr> ins = to_vars(inputs, "model");
        std::vector<VarPtr> outs = mnn::mnnx::run_graph(g, ins, states);
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
                          std::vector<std::pair<std::string, std::string>> metadata,
                          std::vector<std::tuple<std::string, std::string, std::vector<int64_t>>> values,
                          std::vector<int> inputs, std::vector<int> outputs, nb::list constants,
                          std::vector<std::pair<int, int>> states, nb::list nodes) {
        mnn::mnnx::ModelDef def;
        def.producer = producer;
        def.metadata = std::move(metadata);
        mnn::mnnx::GraphDef g;
        for (auto& [name, dt, shape] : values) g.values.push_back({name, parse_dtype(nb::str(dt.c_str())), shape});
        g.inputs = std::move(inputs);
        g.outputs = std::move(outputs);
        g.states = std::move(states);
        for (nb::handle c : constants) {
            auto t = nb::cast<nb::tuple>(c);
            mnn::mnnx::ConstDef cd;
            cd.value = nb::cast<int>(t[0]);
            cd.tensor = mnn::value_of(nb::cast<const Var&>(t[1]).p);
            cd.encoding = parse_encoding(nb::cast<std::string>(t[2]));
            g.constants.push_back(std::move(cd));
        }
        for (nb::handle n : nodes) {
            auto t = nb::cast<nb::tuple>(n);
            mnn::mnnx::NodeDef nd;
            nd.op = parse_op(t[0]);
            nd.attrs = parse_attrs(nd.op, nb::cast<nb::dict>(t[1]));
            nd.inputs = nb::cast<std::vector<int>>(t[2]);
            nd.outputs = nb::cast<std::vector<int>>(t[3]);
            g.nodes.push_back(std::move(nd));
        }
        def.graphs.push_back(std::move(g));
        mnn::mnnx::save(def, path);
    }, "Writes an .mnnx file from a traced graph (mnn_nn.export does this).");

    nb::class_<MnnxModel>(m, "MnnxModel", "A loaded .mnnx model (mnn_nn.load wraps it).")
        .def("__init__", [](MnnxModel* self, const std::string& path) {
            new (self) MnnxModel{mnn::mnnx::load(path), {}};
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
