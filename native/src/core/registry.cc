#include "core/registry.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "ops/common.h"

namespace mnn {

namespace {

AttrValue parse_default(AttrType t, const std::string& text) {
    auto split = [&](auto conv) {
        std::vector<decltype(conv(std::string()))> out;
        std::stringstream ss(text);
        std::string item;
        while (std::getline(ss, item, ',')) out.push_back(conv(item));
        return out;
    };
    switch (t) {
        case AttrType::Int: case AttrType::Bool: return int64_t(std::stoll(text));
        case AttrType::Float: return std::stod(text);
        case AttrType::Ints: return split([](const std::string& s) { return int64_t(std::stoll(s)); });
        case AttrType::Floats: return split([](const std::string& s) { return std::stod(s); });
        case AttrType::Str: return text;
        case AttrType::DTypeT: {
            DType d;
            if (!dtype_from_name(text, &d)) std::abort();  // a typo in ops.def, caught by the first import
            return int64_t(d);
        }
        case AttrType::Graph: std::abort();  // graphs have no defaults
    }
    return int64_t(0);
}

std::vector<AttrSpec> parse_schema(const char* text) {
    static const std::pair<const char*, AttrType> kTypes[] = {
        {"int", AttrType::Int}, {"float", AttrType::Float}, {"bool", AttrType::Bool}, {"ints", AttrType::Ints},
        {"floats", AttrType::Floats}, {"str", AttrType::Str}, {"dtype", AttrType::DTypeT},
        {"graph", AttrType::Graph}};
    std::vector<AttrSpec> out;
    std::stringstream ss(text);
    std::string tok;
    while (ss >> tok) {
        AttrSpec a;
        size_t colon = tok.find(':'), eq = tok.find('=');
        a.name = tok.substr(0, colon);
        std::string type = tok.substr(colon + 1, eq == std::string::npos ? std::string::npos : eq - colon - 1);
        bool found = false;
        for (auto& [n, t] : kTypes)
            if (type == n) { a.type = t; found = true; }
        if (!found) std::abort();
        if (eq != std::string::npos) {
            a.has_default = true;
            a.default_value = parse_default(a.type, tok.substr(eq + 1));
        }
        out.push_back(std::move(a));
    }
    return out;
}

std::vector<OpDef>& table() {
    static std::vector<OpDef> ops = [] {
        std::vector<OpDef> v;
#define OP(NAME, PY, CAT, NIN, NOUT, ATTRS) \
    v.push_back(OpDef{OpType::NAME, PY, #NAME, Category::CAT, NIN, NOUT, parse_schema(ATTRS)});
#include "mnn/ops.def"
#undef OP
        return v;
    }();
    return ops;
}

void register_all() {
    register_elementwise_ops();
    register_reduce_ops();
    register_movement_ops();
    register_index_ops();
    register_sort_ops();
    register_linalg_ops();
    register_conv_ops();
    register_softmax_ops();
    register_random_ops();
    register_control_flow_ops();
}

std::vector<OpDef>& ready_table() {
    static std::once_flag once;
    std::call_once(once, register_all);
    return table();
}

}  // namespace

void register_op(OpType t, InferFn infer, KernelFn kernel, bool half_native) {
    OpDef& d = table()[int(t)];
    d.infer = infer;
    d.kernel = kernel;
    d.half_native = half_native;
}

const std::vector<OpDef>& all_ops() { return ready_table(); }
const std::vector<OpDef>& declared_ops() { return table(); }
const OpDef& op_def(OpType t) { return ready_table()[int(t)]; }

OpType op_from_name(const std::string& name) {
    static const std::unordered_map<std::string, OpType> by_name = [] {
        std::unordered_map<std::string, OpType> m;
        for (const OpDef& d : ready_table()) { m.emplace(d.name, d.type); m.emplace(d.cpp_name, d.type); }
        return m;
    }();
    auto it = by_name.find(name);
    if (it == by_name.end()) throw ValueError(fmt("unknown op '", name, "'"));
    return it->second;
}

std::vector<TensorInfo> infer(OpType t, const Attrs& attrs, const std::vector<TensorInfo>& inputs) {
    const OpDef& d = op_def(t);
    if (d.n_inputs >= 0 && int(inputs.size()) != d.n_inputs)
        throw TypeError(fmt(d.name, ": expected ", d.n_inputs, " inputs, got ", inputs.size()));
    if (d.n_inputs < 0 && inputs.empty() && d.category != Category::Random)
        throw TypeError(fmt(d.name, ": expected at least one input"));
    if (!d.infer) throw ValueError(fmt(d.name, ": op has no shape rule (internal error)"));
    std::vector<TensorInfo> out = d.infer(attrs, inputs);
    for (const TensorInfo& o : out) check_shape(o.shape, o.dtype, d.name);
    return out;
}

void run_kernel(OpType t, const Attrs& attrs, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) {
    const OpDef& d = op_def(t);
    if (!d.kernel) throw ValueError(fmt(d.name, ": op has no CPU kernel (internal error)"));
    bool any_half = false;
    if (!d.half_native) {
        for (const Tensor& x : inputs) any_half |= is_half(x.dtype());
        for (const Tensor& y : outputs) any_half |= is_half(y.dtype());
    }
    if (!any_half) { d.kernel(attrs, inputs, outputs); return; }
    // Compute halves in float32: widen inputs, run, narrow outputs.
    std::vector<Tensor> in32, out32;
    for (const Tensor& x : inputs) in32.push_back(is_half(x.dtype()) ? cast_tensor(x, DType::Float32) : x);
    for (const Tensor& y : outputs) out32.push_back(is_half(y.dtype()) ? Tensor(DType::Float32, y.shape()) : y);
    Attrs a32 = attrs;
    if (d.type == OpType::Cast) {}  // Cast is half-native; never reaches here
    d.kernel(a32, in32, out32);
    for (size_t i = 0; i < outputs.size(); ++i)
        if (is_half(outputs[i].dtype())) cast_into(out32[i], outputs[i]);
}

}  // namespace mnn
