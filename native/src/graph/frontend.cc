#include "graph/frontend.h"
#include "ops/common.h"

namespace mnn {

VarPtr scalar_const(const Operand& s, DType t) {
    Tensor x(t, {});
    Tensor src;
    switch (s.kind) {
        case ScalarKind::Bool: src = Tensor(DType::Bool, {}); *src.data<bool>() = s.i != 0; break;
        case ScalarKind::Int: {
            // NEP 50: a Python int that the array's integer dtype cannot hold is an error.
            if (is_int(t)) {
                int64_t lo = t == DType::Int8 ? -128 : t == DType::UInt8 ? 0 : t == DType::Int32 ? INT32_MIN : INT64_MIN;
                int64_t hi = t == DType::Int8 ? 127 : t == DType::UInt8 ? 255 : t == DType::Int32 ? INT32_MAX : INT64_MAX;
                if (s.i < lo || s.i > hi)
                    throw ValueError(fmt("Python integer ", s.i, " is out of bounds for ", dtype_name(t)));
            }
            src = Tensor(DType::Int64, {});
            *src.data<int64_t>() = s.i;
            break;
        }
        case ScalarKind::Float: src = Tensor(DType::Float64, {}); *src.data<double>() = s.f; break;
    }
    cast_into(src, x);
    return make_const(std::move(x));
}

VarPtr cast(const VarPtr& x, DType t) {
    if (x->info.dtype == t) return x;
    return apply1(OpType::Cast, {x}, make_attrs(OpType::Cast, {int64_t(t)}));
}

VarPtr unary(OpType op, const VarPtr& x) {
    if (unary_float_only(op) && !is_float(x->info.dtype)) return apply1(op, {cast(x, DType::Float32)}, empty_attrs(op));
    return apply1(op, {x}, empty_attrs(op));
}

DType result_dtype(const std::vector<const Operand*>& ops) {
    bool have_array = false;
    DType t = DType::Bool;
    for (const Operand* o : ops)
        if (!o->is_scalar) { t = have_array ? promote(t, o->var->info.dtype) : o->var->info.dtype; have_array = true; }
    if (!have_array) {  // only Python scalars: NumPy's defaults, float32 for floats
        ScalarKind k = ScalarKind::Bool;
        for (const Operand* o : ops) k = std::max(k, o->kind);
        return k == ScalarKind::Float ? DType::Float32 : (k == ScalarKind::Int ? DType::Int64 : DType::Bool);
    }
    for (const Operand* o : ops)
        if (o->is_scalar) t = promote_weak(t, o->kind);
    return t;
}

static VarPtr as_var(const Operand& o, DType t) { return o.is_scalar ? scalar_const(o, t) : cast(o.var, t); }

VarPtr binary(OpType op, const Operand& a, const Operand& b) {
    DType t;
    if (!a.is_scalar && !b.is_scalar) t = promote(a.var->info.dtype, b.var->info.dtype);  // the common case
    else t = result_dtype({&a, &b});
    if (binary_float_only(op) && !is_float(t)) t = DType::Float32;
    return apply1(op, {as_var(a, t), as_var(b, t)}, empty_attrs(op));
}

VarPtr where(const Operand& cond, const Operand& x, const Operand& y) {
    VarPtr c = as_var(cond, DType::Bool);
    DType t = result_dtype({&x, &y});
    return apply1(OpType::Where, {c, as_var(x, t), as_var(y, t)}, empty_attrs(OpType::Where));
}

}  // namespace mnn
