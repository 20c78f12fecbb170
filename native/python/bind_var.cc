// The Var class: a handle to a VarImpl.  Arithmetic operators live here, in
// C++, so an eager `a + b` costs one native call; the rest of the Var surface
// (indexing, methods) is attached from Python (mnn_expr/_var_methods.py).
#include "python/bind.h"

namespace mnnpy {

Operand to_operand(nb::handle h) {
    Operand o;
    if (nb::isinstance<Var>(h)) { o.var = nb::cast<const Var&>(h).p; return o; }
    if (PyBool_Check(h.ptr())) { o.is_scalar = true; o.kind = ScalarKind::Bool; o.i = h.ptr() == Py_True; return o; }
    // Exact Python int/float only: numpy scalars (np.float64 subclasses float) are strong, as in NumPy 2.
    if (PyLong_CheckExact(h.ptr())) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
        if (overflow) throw mnn::ValueError("Python int is out of range for int64");
        o.is_scalar = true; o.kind = ScalarKind::Int; o.i = v; return o;
    }
    if (PyFloat_CheckExact(h.ptr())) { o.is_scalar = true; o.kind = ScalarKind::Float; o.f = PyFloat_AS_DOUBLE(h.ptr()); return o; }
    o.var = to_var(h).p;  // numpy arrays, lists, numpy scalars: through mnn_expr.asarray
    return o;
}

static nb::object binop(OpType op, nb::handle a, nb::handle b) {
    Operand oa, ob;
    try {
        oa = to_operand(a);
        ob = to_operand(b);
    } catch (const nb::python_error&) {
        return nb::borrow(Py_NotImplemented);  // let Python try the reflected operator
    } catch (const mnn::TypeError&) {
        return nb::borrow(Py_NotImplemented);
    }
    return nb::cast(Var{mnn::binary(op, oa, ob)});
}

void bind_var(nb::module_& m) {
    auto cls = nb::class_<Var>(m, "Var", "A value in an mnnpy expression graph (see mnn_expr.Var docs).");
    cls.def_prop_ro("shape", [](const Var& v) {
            nb::tuple t = nb::steal<nb::tuple>(PyTuple_New(Py_ssize_t(v.p->info.shape.size())));
            for (size_t i = 0; i < v.p->info.shape.size(); ++i)
                PyTuple_SET_ITEM(t.ptr(), Py_ssize_t(i), PyLong_FromLongLong(v.p->info.shape[i]));
            return t;
        })
        .def_prop_ro("_dtype_name", [](const Var& v) { return mnn::dtype_name(v.p->info.dtype); })
        .def_prop_ro("ndim", [](const Var& v) { return v.p->info.shape.size(); })
        .def_prop_ro("size", [](const Var& v) { return v.p->info.numel(); })
        .def_prop_rw("name", [](const Var& v) { return v.p->name; }, [](Var& v, std::string n) { v.p->name = std::move(n); })
        .def_prop_ro("_computed", [](const Var& v) { return v.p->computed(); })
        .def_prop_ro("_has_history", [](const Var& v) { return bool(v.p->node); })
        .def_prop_ro("_from_placeholder", [](const Var& v) { return v.p->from_placeholder; },
                     "Computed from a placeholder (its value is recomputed after a new write).")
        .def_prop_ro("_kind", [](const Var& v) { return int(v.p->kind); })
        .def_prop_ro("_op", [](const Var& v) -> nb::object {
            if (!v.p->node) return nb::none();
            return nb::str(mnn::op_def(v.p->node->op).name);
        })
        .def_prop_ro("_output_index", [](const Var& v) { return v.p->output_index; })
        .def_prop_ro("_node_id", [](const Var& v) { return reinterpret_cast<uintptr_t>(v.p->node.get()); },
                     "Identity of the producing node (0 without history): outputs of one node share it.")
        .def_prop_ro("_inputs", [](const Var& v) {
            nb::list l;
            if (v.p->node)
                for (auto& i : v.p->node->inputs) l.append(Var{i});
            return l;
        })
        .def_prop_ro("_attrs", [](const Var& v) { return v.p->node ? attrs_to_dict(v.p->node->attrs) : nb::dict(); })
        .def_prop_rw("requires_grad", [](const Var& v) { return v.p->requires_grad; },
                     [](Var& v, bool r) { v.p->requires_grad = r; })
        .def("_id", [](const Var& v) { return reinterpret_cast<uintptr_t>(v.p.get()); })
        .def("_same", [](const Var& v, const Var& o) { return v.p == o.p; })
        .def("_rebind", [](Var& v, const Var& o) { v.p = o.p; }, "Make this handle refer to another value (indexed update).")
        .def("_alias", [](const Var& v) { return Var{v.p}; }, "A second handle to this value (rebinding one leaves the other).")
        .def("_set_kind", [](Var& v, int k) { v.p->kind = mnn::VarKind(k); })
        .def("_evaluate", [](const Var& v) { mnn::evaluate({v.p}); })
        .def("_numpy", [](const Var& v) { return tensor_to_numpy(mnn::value_of(v.p)); },
             "The value as a read-only numpy array sharing this Var's memory.")
        .def("_write", [](Var& v, nb::handle arr) { write_placeholder(v, arr); })
        .def("_write_var", [](Var& v, const Var& src) { write_placeholder_var(v, src); },
             "Gives a placeholder another Var's value, sharing its memory (no copy).")
        .def("__len__", [](const Var& v) {
            if (v.p->info.shape.empty()) throw nb::type_error("len() of a 0-d Var");
            return v.p->info.shape[0];
        });

#define MNN_BINOP(NAME, OP) \
    cls.def("__" #NAME "__", [](nb::handle a, nb::handle b) { return binop(OpType::OP, a, b); }, nb::is_operator()); \
    cls.def("__r" #NAME "__", [](nb::handle a, nb::handle b) { return binop(OpType::OP, b, a); }, nb::is_operator());
    MNN_BINOP(add, Add)
    MNN_BINOP(sub, Sub)
    MNN_BINOP(mul, Mul)
    MNN_BINOP(truediv, Div)
    MNN_BINOP(floordiv, FloorDiv)
    MNN_BINOP(mod, Mod)
    MNN_BINOP(pow, Pow)
    MNN_BINOP(and, BitwiseAnd)
    MNN_BINOP(or, BitwiseOr)
    MNN_BINOP(xor, BitwiseXor)
    MNN_BINOP(lshift, LeftShift)
    MNN_BINOP(rshift, RightShift)
#undef MNN_BINOP
    cls.def("__eq__", [](nb::handle a, nb::handle b) { return binop(OpType::Equal, a, b); }, nb::is_operator())
        .def("__ne__", [](nb::handle a, nb::handle b) { return binop(OpType::NotEqual, a, b); }, nb::is_operator())
        .def("__lt__", [](nb::handle a, nb::handle b) { return binop(OpType::Less, a, b); }, nb::is_operator())
        .def("__le__", [](nb::handle a, nb::handle b) { return binop(OpType::LessEqual, a, b); }, nb::is_operator())
        .def("__gt__", [](nb::handle a, nb::handle b) { return binop(OpType::Greater, a, b); }, nb::is_operator())
        .def("__ge__", [](nb::handle a, nb::handle b) { return binop(OpType::GreaterEqual, a, b); }, nb::is_operator())
        .def("__neg__", [](const Var& v) { return Var{mnn::unary(OpType::Neg, v.p)}; })
        .def("__pos__", [](const Var& v) { return v; })
        .def("__abs__", [](const Var& v) { return Var{mnn::unary(OpType::Abs, v.p)}; })
        .def("__invert__", [](const Var& v) {
            return Var{mnn::unary(v.p->info.dtype == mnn::DType::Bool ? OpType::LogicalNot : OpType::BitwiseNot, v.p)};
        });
    cls.attr("__hash__") = nb::none();  // == is elementwise, so Vars are not hashable
}

}  // namespace mnnpy
