#include "core/dtype.h"

namespace mnn {

static const char* kNames[kNumDTypes] = {"bool", "int8", "uint8", "int32", "int64",
                                         "float16", "bfloat16", "float32", "float64"};

const char* dtype_name(DType t) { return kNames[int(t)]; }

bool dtype_from_name(const std::string& s, DType* out) {
    for (int i = 0; i < kNumDTypes; ++i)
        if (s == kNames[i]) { *out = DType(i); return true; }
    return false;
}

DType promote(DType a, DType b) {
    if (a == b) return a;
    if (a == DType::Bool) return b;
    if (b == DType::Bool) return a;
    // Order so that a is the "smaller" category (int before float).
    if (is_float(a) && !is_float(b)) std::swap(a, b);
    if (is_float(b)) {
        if (!is_float(a)) {  // int meets float: the float must hold the int's range
            size_t need = dtype_size(a);
            if (b == DType::Float16 || b == DType::BFloat16) return need <= 1 ? b : (need <= 2 ? DType::Float32 : DType::Float64);
            if (b == DType::Float32) return need <= 2 ? b : DType::Float64;
            return b;
        }
        if (is_half(a) && is_half(b)) return DType::Float32;  // float16 + bfloat16
        return dtype_size(a) >= dtype_size(b) ? a : b;
    }
    // both ints
    bool sa = is_signed_int(a), sb = is_signed_int(b);
    if (sa == sb) return dtype_size(a) >= dtype_size(b) ? a : b;
    DType u = sa ? b : a, s = sa ? a : b;  // unsigned (uint8) meets signed
    if (dtype_size(s) > dtype_size(u)) return s;
    (void)u;
    return DType::Int32;  // int8 + uint8: NumPy gives int16, which we do not have
}

DType promote_weak(DType t, ScalarKind k) {
    switch (k) {
        case ScalarKind::Bool: return t;
        case ScalarKind::Int: return t == DType::Bool ? DType::Int64 : t;
        case ScalarKind::Float: return is_float(t) ? t : DType::Float32;
    }
    return t;
}

}  // namespace mnn
