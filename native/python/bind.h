// Shared declarations of the nanobind layer (module _native in mnn_expr).
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "graph/expr.h"
#include "graph/graph_def.h"
#include "graph/frontend.h"
#include "ops/common.h"

namespace nb = nanobind;

namespace mnnpy {

using mnn::OpType;
using mnn::Operand;
using mnn::ScalarKind;
using mnn::VarPtr;

// The Python-visible handle.  Rebinding `p` implements indexed update.
struct Var {
    VarPtr p;
};

// A graph body (If/Loop attribute) as a Python object: immutable, shared.
struct SubGraph {
    mnn::GraphPtr g;
};

Var to_var(nb::handle h);                    // Var as is; anything else via mnn_expr.asarray
Operand to_operand(nb::handle h);            // Python scalars stay weak
nb::object tensor_to_numpy(const mnn::Tensor& t);
mnn::Tensor numpy_to_tensor(nb::handle arr, bool copy);
void write_placeholder(Var& v, nb::handle arr);
void write_placeholder_var(Var& v, const Var& src);  // shares src's value (same dtype and shape)
nb::dict attrs_to_dict(const mnn::Attrs& a);

mnn::DType parse_dtype(nb::handle h);                  // "float32", a numpy dtype, ...
OpType parse_op(nb::handle h);                          // op name or id
mnn::Attrs parse_attrs(OpType op, nb::dict kwargs);     // checked against the op's schema
std::vector<VarPtr> to_vars(nb::handle seq, const char* op);

void bind_var(nb::module_& m);
void bind_mnnx(nb::module_& m);
void bind_functions(nb::module_& m);

}  // namespace mnnpy
