// The public runtime API (include/mnn/runtime.h) over the .mnnx reader and run_graph.
#include "mnn/runtime.h"

#include "core/cpu.h"

#include "core/thread_pool.h"
#include "format/mnnx.h"
#include "graph/profile.h"

namespace mnn::runtime {

namespace {

DType parse_dtype(const std::string& s) {
    DType t;
    if (!dtype_from_name(s, &t)) throw Error("runtime: unknown dtype '" + s + "'");
    return t;
}

ValueInfo info_of(const ValueDef& v) { return {v.name, dtype_name(v.dtype), v.shape}; }

// Runs `f`, turning the core's exceptions into runtime::Error.
template <typename F> auto guarded(F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(e.what());
    }
}

}  // namespace

int64_t Array::size() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

size_t Array::nbytes() const { return size_t(size()) * dtype_size(parse_dtype(dtype)); }

Array Array::zeros(const std::string& dtype, std::vector<int64_t> shape) {
    return guarded([&] {
        Tensor t(parse_dtype(dtype), Shape(shape.begin(), shape.end()));
        std::memset(t.raw(), 0, t.nbytes());
        Array a{dtype, std::move(shape), std::shared_ptr<void>(t.storage, t.raw()), t.raw()};
        return a;
    });
}

struct Model::Impl {
    mnnx::ModelDef def;
    std::vector<ValueInfo> inputs, outputs;
    std::vector<VarPtr> states;  // current values of the graph's states
    std::unique_ptr<PreparedGraph> prepared;  // plans per input signature (graph/graph_def.h)
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& path) {
    return guarded([&] {
        std::unique_ptr<Model> m(new Model());
        m->impl_->def = mnnx::load(path);
        m->impl_->prepared = std::make_unique<PreparedGraph>(&m->impl_->def.graph);
        const GraphDef& g = m->impl_->def.graph;
        for (int i : g.inputs) m->impl_->inputs.push_back(info_of(g.values[size_t(i)]));
        for (int o : g.outputs) m->impl_->outputs.push_back(info_of(g.values[size_t(o)]));
        for (auto [s, o] : g.states)
            for (const auto& c : g.constants)
                if (c.value == s) m->impl_->states.push_back(make_const(c.tensor, g.values[size_t(s)].name));
        return m;
    });
}

const std::vector<ValueInfo>& Model::inputs() const { return impl_->inputs; }
const std::vector<ValueInfo>& Model::outputs() const { return impl_->outputs; }
const std::string& Model::producer() const { return impl_->def.producer; }
const std::vector<std::pair<std::string, std::string>>& Model::metadata() const { return impl_->def.metadata; }
bool Model::has_state() const { return !impl_->states.empty(); }

std::vector<Array> Model::run(const std::vector<Array>& inputs) {
    return guarded([&] {
        const GraphDef& g = impl_->def.graph;
        std::vector<Tensor> values;  // the inputs, then the states
        for (size_t k = 0; k < inputs.size(); ++k) {
            const Array& a = inputs[k];
            Shape shape(a.shape.begin(), a.shape.end());
            DType dt = parse_dtype(a.dtype);
            check_shape(shape, dt, "runtime input");
            if (!a.data && numel(shape) > 0) throw Error("runtime: input " + std::to_string(k) + " has no data");
            // Borrow the caller's bytes; the storage keeps their owner alive (outputs may be views of inputs).
            Tensor t;
            t.info = {dt, shape};
            auto s = std::make_shared<Storage>();
            s->data = a.data;
            s->bytes = size_t(numel(shape)) * dtype_size(dt);
            s->rewritable = true;
            s->release_ctx = new std::shared_ptr<void>(a.owner);
            s->release = [](void*, void* ctx) { delete static_cast<std::shared_ptr<void>*>(ctx); };
            t.storage = std::move(s);
            values.push_back(std::move(t));
        }
        MNN_CHECK_VALUE(values.size() == g.inputs.size(), "model: expected ", g.inputs.size(), " inputs, got ",
                        values.size());
        for (const VarPtr& st : impl_->states) values.push_back(value_of(st));
        std::vector<Tensor> outs = impl_->prepared->run(values, impl_->states.size());
        for (size_t k = 0; k < g.states.size(); ++k)
            for (size_t j = 0; j < g.outputs.size(); ++j)
                if (g.outputs[j] == g.states[k].second) impl_->states[k] = make_const(outs[j]);
        std::vector<Array> result;
        for (const Tensor& t : outs) {
            result.push_back(Array{dtype_name(t.dtype()), std::vector<int64_t>(t.shape().begin(), t.shape().end()),
                                   std::shared_ptr<void>(t.storage, t.raw()), t.raw()});
        }
        return result;
    });
}

void set_threads(int n) {
    guarded([&] { set_thread_number(n); });
}
int threads() { return get_thread_number(); }

const char* cpu_level() { return cpu_level_name(active_level()); }

void set_profiling(bool on) { mnn::set_profiling(on); }
void profile_reset() { mnn::profile_reset(); }
std::string profile_report(int top) { return mnn::profile_report(top); }

}  // namespace mnn::runtime
