// The op registry: OpType (expanded from ops.def) and, per op, its schema,
// shape/dtype rule and kernel.  Family files under src/ops/ fill it through
// explicit register_*() calls (no static constructors); registry.cc checks at
// start-up that no op was left without a rule and a kernel.
#pragma once
#include <string>
#include <vector>

#include "core/attrs.h"
#include "core/tensor.h"

namespace mnn {

enum class OpType : uint16_t {
#define OP(NAME, PY, CAT, NIN, NOUT, ATTRS) NAME,
#include "mnn/ops.def"
#undef OP
    kCount
};
constexpr int kNumOps = int(OpType::kCount);

enum class Category : uint8_t { Unary, Binary, Select, Cast, Reduce, Scan, Movement, Index, Sort, Compute, Random, Control };

// Shape/dtype rule: validates inputs and attributes (throwing ValueError /
// TypeError with a message for people) and returns the output infos.
using InferFn = std::vector<TensorInfo> (*)(const Attrs& attrs, const std::vector<TensorInfo>& inputs);
// Kernel: outputs are allocated by the caller with the inferred infos.
using KernelFn = void (*)(const Attrs& attrs, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs);

struct OpDef {
    OpType type;
    const char* name;      // Python name, e.g. "add"
    const char* cpp_name;  // enum name, e.g. "Add"
    Category category;
    int n_inputs;   // -1 = variadic
    int n_outputs;  // -1 = from the shape rule
    std::vector<AttrSpec> schema;
    InferFn infer = nullptr;
    KernelFn kernel = nullptr;
    bool half_native = false;  // kernel handles float16/bfloat16 itself (movement ops do)
};

const OpDef& op_def(OpType t);
const std::vector<OpDef>& all_ops();
const std::vector<OpDef>& declared_ops();  // the table before registration (for register_*())
OpType op_from_name(const std::string& name);  // throws ValueError when unknown
void register_op(OpType t, InferFn infer, KernelFn kernel, bool half_native = false);

// Checks arity, then calls the op's shape rule.
std::vector<TensorInfo> infer(OpType t, const Attrs& attrs, const std::vector<TensorInfo>& inputs);
// Runs the kernel; float16/bfloat16 are widened to float32 around kernels that
// do not handle them natively.
void run_kernel(OpType t, const Attrs& attrs, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs);

// Family registration entry points (one per file under src/ops/).
void register_elementwise_ops();
void register_reduce_ops();
void register_movement_ops();
void register_index_ops();
void register_sort_ops();
void register_linalg_ops();
void register_conv_ops();
void register_softmax_ops();  // ops/softmax.cc
void register_random_ops();
void register_control_flow_ops();  // ops/control_flow.cc

}  // namespace mnn
