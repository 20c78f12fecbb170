// Module _native: functions over Vars, numpy conversion, the op table and
// executor switches.  mnn_expr wraps these in typed, documented Python APIs.
#include <deque>

#include <nanobind/stl/pair.h>
#include <nanobind/stl/tuple.h>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "graph/passes.h"
#include "graph/profile.h"
#include "ops/conv_epilogue.h"
#include "ops/conv_winograd.h"
#include "ops/gemm_ext.h"
#include "python/bind.h"

#include "backend/backend.h"

namespace mnnpy {

using mnn::DType;
using mnn::Tensor;

namespace {

// mnn_expr.asarray, set at import; leaked on purpose so no Python object is
// released by a static destructor after the interpreter has shut down.
nb::object* g_converter = new nb::object();

nb::dlpack::dtype to_dl(DType t) {
    using C = nb::dlpack::dtype_code;
    switch (t) {
        case DType::Bool: return {uint8_t(C::Bool), 8, 1};
        case DType::Int8: return {uint8_t(C::Int), 8, 1};
        case DType::UInt8: return {uint8_t(C::UInt), 8, 1};
        case DType::Int32: return {uint8_t(C::Int), 32, 1};
        case DType::Int64: return {uint8_t(C::Int), 64, 1};
        case DType::Float16: return {uint8_t(C::Float), 16, 1};
        case DType::BFloat16: return {uint8_t(C::Bfloat), 16, 1};
        case DType::Float32: return {uint8_t(C::Float), 32, 1};
        case DType::Float64: return {uint8_t(C::Float), 64, 1};
    }
    return {uint8_t(C::Float), 32, 1};
}

bool from_dl(nb::dlpack::dtype d, DType* out) {
    using C = nb::dlpack::dtype_code;
    if (d.lanes != 1) return false;
    switch (C(d.code)) {
        case C::Bool: if (d.bits == 8) { *out = DType::Bool; return true; } return false;
        case C::Int:
            if (d.bits == 8) *out = DType::Int8; else if (d.bits == 32) *out = DType::Int32; else if (d.bits == 64) *out = DType::Int64; else return false;
            return true;
        case C::UInt: if (d.bits == 8) { *out = DType::UInt8; return true; } return false;
        case C::Float:
            if (d.bits == 16) *out = DType::Float16; else if (d.bits == 32) *out = DType::Float32; else if (d.bits == 64) *out = DType::Float64; else return false;
            return true;
        case C::Bfloat: if (d.bits == 16) { *out = DType::BFloat16; return true; } return false;
        default: return false;
    }
}

}  // namespace

// ---- shared with the other binding files (bind.h) ----

DType parse_dtype(nb::handle h) {
    std::string s = nb::cast<std::string>(nb::str(h));
    DType t;
    if (!mnn::dtype_from_name(s, &t)) throw mnn::TypeError(mnn::fmt("unknown dtype '", s, "'"));
    return t;
}

static mnn::AttrValue convert_attr(const mnn::OpDef& d, const mnn::AttrSpec& spec, nb::handle v) {
    using mnn::AttrType;
    auto bad = [&](const char* want) {
        return mnn::TypeError(mnn::fmt(d.name, ": attribute '", spec.name, "' expects ", want, ", got ",
                                       nb::cast<std::string>(nb::repr(v))));
    };
    try {
        switch (spec.type) {
            case AttrType::Int: case AttrType::Bool:
                if (PyFloat_Check(v.ptr())) throw bad(spec.type == AttrType::Int ? "an int" : "a bool");
                return int64_t(nb::cast<int64_t>(v));
            case AttrType::Float: return nb::cast<double>(v);
            case AttrType::Ints: {
                std::vector<int64_t> out;
                if (PyLong_Check(v.ptr())) { out.push_back(nb::cast<int64_t>(v)); return out; }
                for (nb::handle e : nb::iter(v)) {
                    if (PyFloat_Check(e.ptr())) throw bad("a sequence of ints");
                    out.push_back(nb::cast<int64_t>(e));
                }
                return out;
            }
            case AttrType::Floats: {
                std::vector<double> out;
                for (nb::handle e : nb::iter(v)) out.push_back(nb::cast<double>(e));
                return out;
            }
            case AttrType::Str: return nb::cast<std::string>(v);
            case AttrType::DTypeT:
                try {
                    return int64_t(parse_dtype(v));
                } catch (const mnn::TypeError&) {
                    throw bad("a dtype name");
                }
            case AttrType::Graph:
                if (!nb::isinstance<SubGraph>(v)) throw bad("a SubGraph (mnn_expr.subgraph)");
                return nb::cast<const SubGraph&>(v).g;
        }
    } catch (const nb::cast_error&) {
        const char* want[] = {"an int", "a float", "a bool", "a sequence of ints", "a sequence of floats", "a str", "a dtype"};
        throw bad(want[int(spec.type)]);
    } catch (const nb::python_error&) {
        throw bad("a value of the declared type");
    }
    return int64_t(0);
}

mnn::Attrs parse_attrs(OpType op, nb::dict kwargs) {
    const mnn::OpDef& d = mnn::op_def(op);
    std::vector<mnn::AttrValue> values;
    size_t used = 0;
    for (const mnn::AttrSpec& spec : d.schema) {
        if (kwargs.contains(spec.name.c_str())) {
            values.push_back(convert_attr(d, spec, kwargs[spec.name.c_str()]));
            ++used;
        } else if (spec.has_default) {
            values.push_back(spec.default_value);
        } else {
            throw mnn::TypeError(mnn::fmt(d.name, ": missing attribute '", spec.name, "'"));
        }
    }
    if (used != kwargs.size()) {
        for (auto [k, v] : kwargs) {
            if (!nb::isinstance<nb::str>(k))
                throw mnn::TypeError(mnn::fmt(d.name, ": attribute names must be str, got ", nb::cast<std::string>(nb::repr(k))));
            std::string key = nb::cast<std::string>(k);
            bool known = false;
            for (const auto& spec : d.schema) known |= spec.name == key;
            if (!known) throw mnn::TypeError(mnn::fmt(d.name, ": unknown attribute '", key, "'"));
        }
    }
    return mnn::make_attrs(op, std::move(values));
}

OpType parse_op(nb::handle h) {
    if (PyLong_Check(h.ptr())) {
        int64_t i = 0;
        if (!nb::try_cast(h, i)) throw mnn::TypeError("op id out of range");
        if (i < 0 || i >= mnn::kNumOps) throw mnn::ValueError(mnn::fmt("op id ", i, " out of range"));
        return OpType(i);
    }
    return mnn::op_from_name(nb::cast<std::string>(h));
}

// Converts op inputs, naming the op and the input when one cannot be a Var.
std::vector<VarPtr> to_vars(nb::handle seq, const char* op) {
    std::vector<VarPtr> out;
    for (nb::handle h : nb::iter(seq)) {
        try {
            out.push_back(to_var(h).p);
        } catch (const nb::python_error& e) {
            throw mnn::TypeError(mnn::fmt(op, ": input ", out.size(), " cannot be converted to a Var (", e.what(), ")"));
        } catch (const mnn::TypeError& e) {
            throw mnn::TypeError(mnn::fmt(op, ": input ", out.size(), " cannot be converted to a Var (", e.what(), ")"));
        }
    }
    return out;
}

namespace {

Operand operand_for(nb::handle h, OpType op, int index) {
    try {
        return to_operand(h);
    } catch (const nb::python_error& e) {
        throw mnn::TypeError(mnn::fmt(mnn::op_def(op).name, ": input ", index, " cannot be converted to a Var (", e.what(), ")"));
    } catch (const mnn::TypeError& e) {
        throw mnn::TypeError(mnn::fmt(mnn::op_def(op).name, ": input ", index, " cannot be converted to a Var (", e.what(), ")"));
    }
}

nb::list wrap(const std::vector<VarPtr>& vs) {
    nb::list l;
    for (const auto& v : vs) l.append(Var{v});
    return l;
}

// Names and docstrings of functions made at import live as long as the module.
const char* intern(const std::string& s) {
    static std::deque<std::string>* strings = new std::deque<std::string>();
    strings->push_back(s);
    return strings->back().c_str();
}

}  // namespace

Var to_var(nb::handle h) {
    if (nb::isinstance<Var>(h)) return nb::cast<Var>(h);
    if (!g_converter->is_valid()) throw mnn::TypeError("mnn_expr is not initialised");
    nb::object r = (*g_converter)(h);
    if (!nb::isinstance<Var>(r)) throw mnn::TypeError("asarray did not return a Var");
    return nb::cast<Var>(r);
}

nb::object tensor_to_numpy(const Tensor& t0) {
    Tensor t = t0.dtype() == DType::BFloat16 ? mnn::cast_tensor(t0, DType::Float32) : t0;  // numpy has no bfloat16
    auto* keep = new std::shared_ptr<mnn::Storage>(t.storage);
    nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<std::shared_ptr<mnn::Storage>*>(p); });
    std::vector<size_t> shape(t.shape().begin(), t.shape().end());
    nb::ndarray<nb::numpy, nb::ro> arr(t.raw(), shape.size(), shape.data(), owner, nullptr, to_dl(t.dtype()));
    return arr.cast();
}

Tensor numpy_to_tensor(nb::handle h, bool copy) {
    auto arr = nb::cast<nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>>(h);
    DType t;
    if (!from_dl(arr.dtype(), &t)) throw mnn::TypeError("unsupported array dtype for a Var");
    mnn::Shape shape(arr.ndim());
    for (size_t i = 0; i < arr.ndim(); ++i) shape[i] = int64_t(arr.shape(i));
    mnn::TensorInfo info{t, shape};
    size_t bytes = size_t(info.numel()) * mnn::dtype_size(t);
    // Borrowed bytes have no tail padding: kernels must not over-read (DESIGN: masked tails).
    bool aligned = (reinterpret_cast<uintptr_t>(arr.data()) % mnn::dtype_size(t)) == 0;
    if (copy || !aligned || bytes == 0) {
        Tensor out(info);
        if (bytes) std::memcpy(out.raw(), arr.data(), bytes);
        return out;
    }
    // Zero-copy: keep the source array alive for as long as the Tensor lives.
    Tensor out;
    out.info = info;
    out.storage = std::make_shared<mnn::Storage>();
    out.storage->data = const_cast<void*>(arr.data());
    out.storage->bytes = bytes;
    out.storage->rewritable = true;
    PyObject* owner = h.ptr();
    Py_INCREF(owner);
    out.storage->release_ctx = owner;
    out.storage->release = [](void*, void* ctx) {
        if (!Py_IsInitialized()) return;  // interpreter gone: nothing left to release
        PyGILState_STATE st = PyGILState_Ensure();
        Py_DECREF(static_cast<PyObject*>(ctx));
        PyGILState_Release(st);
    };
    return out;
}

void write_placeholder(Var& v, nb::handle h) {
    Tensor t = numpy_to_tensor(h, /*copy=*/true);
    if (t.dtype() != v.p->info.dtype) t = mnn::cast_tensor(t, v.p->info.dtype);
    if (t.shape() != v.p->info.shape) {
        if (t.numel() != v.p->info.numel())
            throw mnn::ValueError(mnn::fmt("write: value of shape ", mnn::shape_str(t.shape()),
                                           " does not fit placeholder ", mnn::info_str(v.p->info)));
        t = t.view(v.p->info.shape);
    }
    if (v.p->kind != mnn::VarKind::Placeholder)
        throw mnn::TypeError("write: only placeholders can be written (use fix_as_placeholder())");
    v.p->value = t;
    ++mnn::executor_config().placeholder_epoch;  // values computed from the old one are now stale
}

void write_placeholder_var(Var& v, const Var& src) {
    if (v.p->kind != mnn::VarKind::Placeholder)
        throw mnn::TypeError("write: only placeholders can be written (use fix_as_placeholder())");
    const mnn::Tensor& t = mnn::value_of(src.p);  // shared, not copied: placeholders are read-only inputs
    if (t.dtype() != v.p->info.dtype || t.shape() != v.p->info.shape)
        throw mnn::ValueError(mnn::fmt("write: value ", mnn::info_str(src.p->info), " does not match placeholder ",
                                       mnn::info_str(v.p->info)));
    v.p->value = t;
    ++mnn::executor_config().placeholder_epoch;  // values computed from the old one are now stale
}

nb::dict attrs_to_dict(const mnn::Attrs& a) {
    nb::dict d;
    for (size_t i = 0; i < a.values.size(); ++i) {
        const auto& spec = (*a.schema)[i];
        std::visit([&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if (spec.type == mnn::AttrType::DTypeT) d[spec.name.c_str()] = mnn::dtype_name(DType(std::get<int64_t>(a.values[i])));
            else if (spec.type == mnn::AttrType::Bool) d[spec.name.c_str()] = bool(std::get<int64_t>(a.values[i]));
            else if constexpr (std::is_same_v<T, mnn::GraphPtr>) d[spec.name.c_str()] = SubGraph{x};
            else if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>>) {
                nb::list l;
                for (auto e : x) l.append(e);
                d[spec.name.c_str()] = nb::tuple(l);
            } else d[spec.name.c_str()] = x;
        }, a.values[i]);
    }
    return d;
}

void bind_functions(nb::module_& m) {
    m.def("_set_converter", [](nb::object f) { *g_converter = f; });
    m.def("op_table", [] {
        static const char* cats[] = {"unary", "binary", "select", "cast", "reduce", "scan", "movement", "index", "sort", "compute", "random", "control"};
        static const char* types[] = {"int", "float", "bool", "ints", "floats", "str", "dtype", "graph"};
        nb::list l;
        for (const mnn::OpDef& d : mnn::all_ops()) {
            nb::list schema;
            for (const auto& s : d.schema) schema.append(nb::make_tuple(s.name, types[int(s.type)], s.has_default));
            l.append(nb::make_tuple(d.name, d.cpp_name, cats[int(d.category)], d.n_inputs, d.n_outputs, schema,
                                    d.infer != nullptr, d.kernel != nullptr || d.type == OpType::Reshape));
        }
        return l;
    }, "Every primitive: (name, cpp_name, category, n_inputs, n_outputs, attrs, has_shape_rule, has_kernel).");
    m.def("apply", [](nb::handle op, nb::handle inputs, nb::dict attrs) {
        OpType t = parse_op(op);
        return wrap(mnn::apply(t, to_vars(inputs, mnn::op_def(t).name), parse_attrs(t, attrs)));
    }, nb::arg("op"), nb::arg("inputs"), nb::arg("attrs") = nb::dict());
    m.def("apply_computed", [](nb::handle op, nb::handle inputs, nb::dict attrs, nb::handle values) {
        OpType t = parse_op(op);
        std::vector<mnn::Tensor> vals;
        for (const mnn::VarPtr& v : to_vars(values, mnn::op_def(t).name)) vals.push_back(mnn::value_of(v));
        return wrap(mnn::apply_computed(t, to_vars(inputs, mnn::op_def(t).name), parse_attrs(t, attrs), std::move(vals)));
    }, nb::arg("op"), nb::arg("inputs"), nb::arg("attrs"), nb::arg("values"),
       "Records op on inputs with its outputs' values given (the values of these Vars, shared): "
       "eager control flow records the if/loop op computing what its Python functions gave.");
    m.def("value_only", [](const Var& v) { return Var{mnn::make_const(mnn::value_of(v.p), v.p->name)}; },
          "A constant holding v's value (shared, no copy), without its history.");
    m.def("infer", [](nb::handle op, std::vector<std::pair<std::string, std::vector<int64_t>>> infos, nb::dict attrs) {
        OpType t = parse_op(op);
        std::vector<mnn::TensorInfo> in;
        for (auto& [dt, sh] : infos) in.push_back({parse_dtype(nb::str(dt.c_str())), sh});
        nb::list l;
        for (auto& o : mnn::infer(t, parse_attrs(t, attrs), in)) l.append(nb::make_tuple(mnn::dtype_name(o.dtype), std::vector<int64_t>(o.shape.begin(), o.shape.end())));
        return l;
    }, "Shape/dtype rule of an op, without computing.");
    m.def("unary", [](nb::handle op, const Var& x) { return Var{mnn::unary(parse_op(op), x.p)}; });
    m.def("binary", [](nb::handle op, nb::handle a, nb::handle b) {
        OpType t = parse_op(op);
        return Var{mnn::binary(t, operand_for(a, t, 0), operand_for(b, t, 1))};
    }, nb::arg("op"), nb::arg("a").none(), nb::arg("b").none());
    m.def("where", [](nb::handle c, nb::handle x, nb::handle y) {
        OpType t = OpType::Where;
        return Var{mnn::where(operand_for(c, t, 0), operand_for(x, t, 1), operand_for(y, t, 2))};
    }, nb::arg("condition").none(), nb::arg("x").none(), nb::arg("y").none());
    // Native callables for the elementwise functions (F.exp, F.add, ...): no
    // Python frame between the user and the op, so per-op overhead stays low.
    m.def("unary_function", [](int64_t id, std::string name, std::string doc) {
        OpType t = parse_op(nb::int_(id));
        return nb::cpp_function([t](nb::handle x) { return Var{mnn::unary(t, to_var(x).p)}; },
                                nb::name(intern(name)), intern(doc), nb::arg("x").none());
    });
    m.def("binary_function", [](int64_t id, std::string name, std::string doc) {
        OpType t = parse_op(nb::int_(id));
        return nb::cpp_function([t](nb::handle x, nb::handle y) {
            return Var{mnn::binary(t, operand_for(x, t, 0), operand_for(y, t, 1))};
        }, nb::name(intern(name)), intern(doc), nb::arg("x").none(), nb::arg("y").none());
    });
    m.def("cast", [](const Var& x, nb::handle dt) { return Var{mnn::cast(x.p, parse_dtype(dt))}; });
    m.def("result_dtype", [](nb::args args) {
        std::vector<Operand> ops;
        for (nb::handle h : args) ops.push_back(to_operand(h));
        std::vector<const Operand*> ptrs;
        for (auto& o : ops) ptrs.push_back(&o);
        return mnn::dtype_name(mnn::result_dtype(ptrs));
    }, "dtype that combining these operands gives (arrays strong, Python scalars weak).");
    m.def("promote_types", [](nb::handle a, nb::handle b) { return mnn::dtype_name(mnn::promote(parse_dtype(a), parse_dtype(b))); });
    m.def("from_numpy", [](nb::handle arr, bool copy, std::string name, nb::handle dtype) {
        Tensor t = numpy_to_tensor(arr, copy);
        if (!dtype.is_none()) t = mnn::cast_tensor(t, parse_dtype(dtype));
        return Var{mnn::make_const(std::move(t), std::move(name))};
    }, nb::arg("arr"), nb::arg("copy") = true, nb::arg("name") = "", nb::arg("dtype") = nb::none(),
       "A constant Var from a numpy array or DLPack object (shared when copy=False and possible), cast to dtype.");
    m.def("placeholder", [](std::vector<int64_t> shape, nb::handle dt, std::string name) {
        return Var{mnn::make_placeholder({parse_dtype(dt), shape}, std::move(name))};
    }, nb::arg("shape"), nb::arg("dtype"), nb::arg("name") = "");
    m.def("evaluate", [](nb::handle vars) { mnn::evaluate(to_vars(vars, "evaluate")); });
    m.def("set_lazy", [](bool on) { mnn::executor_config().lazy = on; });
    m.def("is_lazy", [] { return mnn::executor_config().lazy; });
    m.def("set_fusion", [](bool on) { mnn::executor_config().fuse_elementwise = on; },
          "Switches blocked elementwise fusion in lazy plans on or off (for comparison and tests).");
    m.def("fusion_enabled", [] { return mnn::executor_config().fuse_elementwise; });
    m.def("set_memory_planning", [](bool on) { mnn::executor_config().plan_memory = on; },
          "Switches the arena memory planner of lazy plans on or off (for comparison and tests).");
    m.def("memory_planning_enabled", [] { return mnn::executor_config().plan_memory; });
    m.def("last_plan_memory", [] {
        auto s = mnn::last_plan_memory();
        nb::dict d;
        d["arena_bytes"] = s.arena_bytes; d["unplanned_bytes"] = s.unplanned_bytes;
        d["planned_values"] = s.planned_values; d["result_bytes"] = s.result_bytes;
        d["in_place"] = s.in_place;
        return d;
    });
    m.def("set_backend", [](const std::string& name, std::vector<std::string> ops) {
        if (name == "cpu") mnn::executor_config().backend.reset();
        else if (name == "null") mnn::executor_config().backend = mnn::make_null_backend(std::move(ops));
        else throw mnn::ValueError(mnn::fmt("set_backend: unknown backend '", name, "' (cpu, null)"));
    }, nb::arg("name"), nb::arg("ops") = std::vector<std::string>(),
       "The device planned graphs run on where it supports an op: 'cpu' (none) or 'null' (a test device).");
    m.def("backend_name", [] {
        auto& b = mnn::executor_config().backend;
        return std::string(b ? b->name() : "cpu");
    });
    m.def("backend_stats", [] {
        auto& b = mnn::executor_config().backend;
        mnn::BackendStats s = b ? mnn::backend_stats(*b) : mnn::BackendStats{};
        nb::dict d;
        d["launches"] = s.launches; d["bytes_uploaded"] = s.bytes_uploaded; d["bytes_downloaded"] = s.bytes_downloaded;
        return d;
    });
    m.def("pass_names", [] {
        nb::list l;
        for (int i = 0; i < mnn::kNumPasses; ++i) l.append(mnn::pass_name(mnn::Pass(i)));
        return l;
    }, "Names of the lazy executor's graph passes, in the order they run.");
    auto parse_pass = [](const std::string& name) {
        mnn::Pass p;
        if (!mnn::pass_from_name(name, &p)) {
            std::string known;
            for (int i = 0; i < mnn::kNumPasses; ++i) known += std::string(i ? ", " : "") + mnn::pass_name(mnn::Pass(i));
            throw mnn::ValueError(mnn::fmt("set_pass: unknown pass '", name, "'; the passes are ", known));
        }
        return p;
    };
    m.def("set_pass", [parse_pass](const std::string& name, bool on) {
        uint32_t bit = mnn::pass_bit(parse_pass(name));
        auto& cfg = mnn::executor_config();
        cfg.passes = on ? (cfg.passes | bit) : (cfg.passes & ~bit);
    }, nb::arg("name"), nb::arg("on"), "Switches one graph pass of new lazy plans on or off (part of the plan key).");
    m.def("pass_enabled", [parse_pass](const std::string& name) {
        return (mnn::executor_config().passes & mnn::pass_bit(parse_pass(name))) != 0;
    }, nb::arg("name"));
    m.def("last_plan_passes", [] {
        auto c = mnn::last_plan_passes();
        nb::dict d;
        d["simplify"] = c.simplify; d["cse"] = c.cse; d["dce"] = c.dce; d["guards"] = c.guards;
        d["conv_epilogue"] = c.conv_epilogue; d["matmul_epilogue"] = c.matmul_epilogue;
        d["layout"] = c.layout;
        return d;
    }, "What the graph passes did for the last plan evaluated on this thread.");
    m.def("plan_cache_stats", [] {
        auto s = mnn::plan_cache_stats();
        nb::dict d;
        d["hits"] = s.hits; d["misses"] = s.misses; d["size"] = s.size;
        return d;
    });
    m.def("clear_plan_cache", &mnn::clear_plan_cache);
    m.def("set_profiling", [](bool on) { mnn::set_profiling(on); }, nb::arg("on"),
          "Switches the lazy executor's per-step profiler on or off (MNN_PROFILE=1 starts with it on).\n\n"
          ">>> _native.set_profiling(True); ...; print(_native.profile_report(10))");
    m.def("profiling_enabled", [] { return mnn::profiling(); });
    m.def("profile_reset", [] { mnn::profile_reset(); }, "Forgets the profiled runs.");
    m.def("profile_report", [](int top) { return mnn::profile_report(top); }, nb::arg("top") = 20,
          "Time per op type and the `top` slowest steps (ms per run) of the runs profiled since the last reset.");
    m.def("profile_stats", [] {
        auto snap = mnn::profile_snapshot();
        nb::dict d;
        d["runs"] = snap.runs;
        d["run_seconds"] = snap.run_seconds;
        nb::list steps;
        for (const auto& e : snap.steps) {
            nb::dict s;
            s["op"] = e.op; s["node"] = e.node; s["seconds"] = e.seconds; s["calls"] = e.calls;
            steps.append(s);
        }
        d["steps"] = steps;
        return d;
    }, "The profile as data: runs, their total seconds, and per step its op, label, seconds and calls.");
    m.def("packed_weight_bytes",
          [] { return mnn::convgeom::packed_weights_bytes() + mnn::convgeom::winograd_weights_bytes(); },
          "Bytes of convolution weights kept packed for the kernels (GEMM panels and Winograd-transformed "
          "weights; one entry per live weight tensor).");
    m.def("clear_packed_weights", [] {
        mnn::convgeom::clear_packed_weights();
        mnn::convgeom::clear_winograd_weights();
    }, "Forgets the packed convolution weights, Winograd's too (they are packed again on next use).");
    m.def("set_thread_number", &mnn::set_thread_number);
    m.def("get_thread_number", &mnn::get_thread_number);
    m.def("cpu_level", [] { return std::string(mnn::cpu_level_name(mnn::active_level())); },
          "The SIMD kernel level in use: generic, avx2, avx512 (x86-64) or neon (AArch64), capped by MNN_CPU_LEVEL.");
    m.def("fma_peak", [](int threads, double seconds) {
        mnn::FmaPeak r = mnn::gemm_fma_peak(threads, seconds);
        nb::dict d;
        d["gflops"] = r.gflops; d["threads"] = r.threads; d["level"] = std::string(r.level);
        d["lanes"] = r.lanes; d["seconds"] = r.seconds;
        return d;
    }, nb::arg("threads"), nb::arg("seconds") = 0.2,
       "The float32 GFLOP/s a register-only FMA loop reaches at the active CPU level on `threads` threads of "
       "the pool at once (capped by the pool's size), best of ~10 ms repeats over about `seconds`.");
    m.def("fma_run", &mnn::gemm_fma_run, nb::arg("flops"),
          "Runs that FMA loop for about `flops` float32 operations split over the pool's threads (to time it side by "
          "side with a GEMM of as many operations); returns the operations done.");
}

}  // namespace mnnpy

NB_MODULE(_native, m) {
    nb::register_exception_translator([](const std::exception_ptr& p, void*) {
        try {
            std::rethrow_exception(p);
        } catch (const mnn::ValueError& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        } catch (const mnn::TypeError& e) {
            PyErr_SetString(PyExc_TypeError, e.what());
        } catch (const mnn::IndexError& e) {
            PyErr_SetString(PyExc_IndexError, e.what());
        } catch (const mnn::MemoryError& e) {
            PyErr_SetString(PyExc_MemoryError, e.what());
        }
    });
    mnnpy::bind_var(m);
    mnnpy::bind_functions(m);
    mnnpy::bind_mnnx(m);
}
