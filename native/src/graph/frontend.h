// Op front ends that need dtype promotion: the one place where NumPy 2
// (NEP 50) promotion with float32 as the default float is applied.  Primitives
// below this layer see inputs of one dtype.
#pragma once
#include "graph/expr.h"

namespace mnn {

// A Python scalar operand (bool/int/float) is "weak": it takes the dtype of
// the array it meets.
struct Operand {
    VarPtr var;  // set for arrays
    bool is_scalar = false;
    ScalarKind kind = ScalarKind::Float;
    double f = 0;
    int64_t i = 0;
};

VarPtr scalar_const(const Operand& s, DType t);  // a 0-d constant of dtype t
VarPtr cast(const VarPtr& x, DType t);
VarPtr unary(OpType op, const VarPtr& x);
VarPtr binary(OpType op, const Operand& a, const Operand& b);
VarPtr where(const Operand& cond, const Operand& x, const Operand& y);
// Result dtype of combining operands (arrays strongly, scalars weakly).
DType result_dtype(const std::vector<const Operand*>& ops);

bool unary_float_only(OpType op);
bool binary_float_only(OpType op);

}  // namespace mnn
