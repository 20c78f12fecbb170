// Elementwise primitives: unary math, binary with broadcasting, where, cast.
// Kernels are flat loops over contiguous data (so compilers vectorise them),
// split across the thread pool above kParallelGrain elements.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/thread_pool.h"
#include "graph/frontend.h"
#include "ops/common.h"
#include "ops/vmath.h"

namespace mnn {

namespace {

constexpr int64_t kParallelGrain = 1 << 15;

// ---- dtype classes per op -----------------------------------------------------

}  // namespace

// Unary ops whose result is a float computed from a float (ints are widened to
// float32 by the front end, graph/frontend.cc).
bool unary_float_only(OpType op) {
    switch (op) {
        case OpType::Neg: case OpType::Abs: case OpType::Sign: case OpType::Floor: case OpType::Ceil:
        case OpType::Round: case OpType::Trunc: case OpType::Square: case OpType::Relu:
        case OpType::LogicalNot: case OpType::BitwiseNot: case OpType::IsNan: case OpType::IsInf:
        case OpType::IsFinite:
            return false;
        default:
            return true;
    }
}
namespace {

bool unary_to_bool(OpType op) {
    return op == OpType::LogicalNot || op == OpType::IsNan || op == OpType::IsInf || op == OpType::IsFinite;
}
bool binary_to_bool(OpType op) {
    switch (op) {
        case OpType::Equal: case OpType::NotEqual: case OpType::Less: case OpType::LessEqual:
        case OpType::Greater: case OpType::GreaterEqual: case OpType::LogicalAnd: case OpType::LogicalOr:
        case OpType::LogicalXor:
            return true;
        default:
            return false;
    }
}
}  // namespace

bool binary_float_only(OpType op) {
    return op == OpType::Div || op == OpType::Atan2 || op == OpType::Hypot || op == OpType::Copysign;
}

namespace {

bool binary_int_only(OpType op) {  // bool allowed except for shifts
    return op == OpType::BitwiseAnd || op == OpType::BitwiseOr || op == OpType::BitwiseXor ||
           op == OpType::LeftShift || op == OpType::RightShift;
}

// ---- scalar math -----------------------------------------------------------------

template <typename T> T py_floordiv(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) {
        if (b == 0) return a / b;  // inf or nan, as NumPy
        T m = std::fmod(a, b), d = (a - m) / b;
        if (m != 0 && ((b < 0) != (m < 0))) d -= 1;
        if (d == 0) return std::copysign(T(0), a / b);
        T fd = std::floor(d);
        if (d - fd > T(0.5)) fd += 1;
        return fd;
    } else if constexpr (std::is_same_v<T, bool>) {
        return b ? a : false;
    } else {
        if (b == 0) return 0;
        if constexpr (std::is_signed_v<T>) {
            if (b == -1) return T(0) - a;  // avoids INT_MIN / -1 overflow trap (wraps like NumPy)
            T q = a / b;
            if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
            return q;
        } else return a / b;
    }
}
template <typename T> T py_mod(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) {
        if (b == 0) return std::fmod(a, b);
        T m = std::fmod(a, b);
        if (m != 0) { if ((b < 0) != (m < 0)) m += b; }
        else m = std::copysign(T(0), b);
        return m;
    } else if constexpr (std::is_same_v<T, bool>) {
        return false;
    } else {
        if (b == 0) return 0;
        if constexpr (std::is_signed_v<T>) {
            if (b == -1) return 0;
            T m = a % b;
            if (m != 0 && ((m < 0) != (b < 0))) m += b;
            return m;
        } else return a % b;
    }
}
template <typename T> T c_fmod(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) return std::fmod(a, b);
    else if constexpr (std::is_same_v<T, bool>) return false;
    else {
        if (b == 0) return 0;
        if constexpr (std::is_signed_v<T>) if (b == -1) return 0;
        return T(a % b);
    }
}
template <typename T> T int_pow(T a, T b) {
    if constexpr (std::is_same_v<T, bool>) return b ? a : true;
    else {
        if constexpr (std::is_signed_v<T>) if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);
        using U = std::make_unsigned_t<T>;
        U r = 1, base = U(a);
        auto e = std::make_unsigned_t<T>(b);
        while (e) { if (e & 1) r *= base; base *= base; e >>= 1; }
        return T(r);
    }
}
template <typename T> T shift_left(T a, T b) {
    using U = std::make_unsigned_t<T>;
    if (b < 0 || b >= T(sizeof(T) * 8)) return 0;
    return T(U(a) << b);
}
template <typename T> T shift_right(T a, T b) {
    if (b < 0 || b >= T(sizeof(T) * 8)) return (std::is_signed_v<T> && a < 0) ? T(-1) : T(0);
    return T(a >> b);
}

double erfinv_d(double y) {
    if (y <= -1) return y == -1 ? -INFINITY : NAN;
    if (y >= 1) return y == 1 ? INFINITY : NAN;
    // Giles' single-precision approximation, refined by two Newton steps in double.
    double w = -std::log((1.0 - y) * (1.0 + y)), x;
    if (w < 5.0) {
        w -= 2.5;
        x = 2.81022636e-08; x = 3.43273939e-07 + x * w; x = -3.5233877e-06 + x * w; x = -4.39150654e-06 + x * w;
        x = 0.00021858087 + x * w; x = -0.00125372503 + x * w; x = -0.00417768164 + x * w; x = 0.246640727 + x * w;
        x = 1.50140941 + x * w;
    } else {
        w = std::sqrt(w) - 3.0;
        x = -0.000200214257; x = 0.000100950558 + x * w; x = 0.00134934322 + x * w; x = -0.00367342844 + x * w;
        x = 0.00573950773 + x * w; x = -0.0076224613 + x * w; x = 0.00943887047 + x * w; x = 1.00167406 + x * w;
        x = 2.83297682 + x * w;
    }
    x *= y;
    for (int i = 0; i < 2; ++i) x -= (std::erf(x) - y) / (1.1283791670955126 * std::exp(-x * x));
    return x;
}

template <typename T> T round_half_even(T x) {
    if constexpr (std::is_floating_point_v<T>) return std::nearbyint(x);  // default FE_TONEAREST
    else return x;
}

template <typename T> bool isinf_any(T x) { if constexpr (std::is_floating_point_v<T>) return std::isinf(x); else return false; }

// ---- parallel map helpers ---------------------------------------------------

template <typename TI, typename TO, typename F>
void map_unary(const TI* x, TO* y, int64_t n, F f) {
    parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) y[i] = f(x[i]);
    });
}

// The vectorised float32 kernel for op (ops/vmath.h, at the CPU level active
// now), or null when op has none.
vmath::UnaryF32 vmath_kernel(OpType op) {
    const vmath::Table& t = vmath::table();
    switch (op) {
        case OpType::Exp: return t.exp;
        case OpType::Log: return t.log;
        case OpType::Tanh: return t.tanh;
        case OpType::Sigmoid: return t.sigmoid;
        case OpType::Silu: return t.silu;
        case OpType::Gelu: return t.gelu;
        case OpType::GeluTanh: return t.gelu_tanh;
        case OpType::Erf: return t.erf;
        case OpType::Expm1: return t.expm1;
        case OpType::Log1p: return t.log1p;
        case OpType::Softplus: return t.softplus;
        default: return nullptr;
    }
}

template <typename T, typename TO>
void unary_typed(OpType op, const T* x, TO* y, int64_t n) {
    using std::abs;
    if constexpr (std::is_same_v<TO, bool>) {
        switch (op) {
            case OpType::LogicalNot: return map_unary(x, y, n, [](T v) { return !v; });
            case OpType::IsNan: return map_unary(x, y, n, [](T v) { return is_nan(v); });
            case OpType::IsInf: return map_unary(x, y, n, [](T v) { return isinf_any(v); });
            case OpType::IsFinite: return map_unary(x, y, n, [](T v) { return !is_nan(v) && !isinf_any(v); });
            default: break;
        }
        if constexpr (!std::is_same_v<T, bool>) return;
    }
    if constexpr (std::is_same_v<T, TO>) {
        switch (op) {
            case OpType::Neg: return map_unary(x, y, n, [](T v) { return T(-v); });
            case OpType::Abs:
                if constexpr (std::is_unsigned_v<T> || std::is_same_v<T, bool>) return map_unary(x, y, n, [](T v) { return v; });
                else return map_unary(x, y, n, [](T v) { return T(v < 0 ? -v : v); });
            case OpType::Sign:
                if constexpr (std::is_floating_point_v<T>)
                    return map_unary(x, y, n, [](T v) { return std::isnan(v) ? v : T((v > 0) - (v < 0)); });
                else return map_unary(x, y, n, [](T v) { return T((v > T(0)) - (v < T(0))); });
            case OpType::Floor: if constexpr (std::is_floating_point_v<T>) return map_unary(x, y, n, [](T v) { return std::floor(v); }); else return map_unary(x, y, n, [](T v) { return v; });
            case OpType::Ceil: if constexpr (std::is_floating_point_v<T>) return map_unary(x, y, n, [](T v) { return std::ceil(v); }); else return map_unary(x, y, n, [](T v) { return v; });
            case OpType::Trunc: if constexpr (std::is_floating_point_v<T>) return map_unary(x, y, n, [](T v) { return std::trunc(v); }); else return map_unary(x, y, n, [](T v) { return v; });
            case OpType::Round: return map_unary(x, y, n, [](T v) { return round_half_even(v); });
            case OpType::Square: return map_unary(x, y, n, [](T v) { return T(v * v); });
            case OpType::Relu: return map_unary(x, y, n, [](T v) { return v > T(0) ? v : T(0); });
            case OpType::BitwiseNot:
                if constexpr (std::is_same_v<T, bool>) return map_unary(x, y, n, [](T v) { return !v; });
                else if constexpr (std::is_integral_v<T>) return map_unary(x, y, n, [](T v) { return T(~v); });
                else break;
            default: break;
        }
        if constexpr (std::is_same_v<T, float>) {
            if (vmath::UnaryF32 fn = vmath_kernel(op)) {
                parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) { fn(x + b, y + b, e - b); });
                return;
            }
        }
        if constexpr (std::is_floating_point_v<T>) {
            switch (op) {
                case OpType::Sqrt: return map_unary(x, y, n, [](T v) { return std::sqrt(v); });
                case OpType::Rsqrt: return map_unary(x, y, n, [](T v) { return T(1) / std::sqrt(v); });
                case OpType::Cbrt: return map_unary(x, y, n, [](T v) { return std::cbrt(v); });
                case OpType::Reciprocal: return map_unary(x, y, n, [](T v) { return T(1) / v; });
                case OpType::Exp: return map_unary(x, y, n, [](T v) { return std::exp(v); });
                case OpType::Exp2: return map_unary(x, y, n, [](T v) { return std::exp2(v); });
                case OpType::Expm1: return map_unary(x, y, n, [](T v) { return std::expm1(v); });
                case OpType::Log: return map_unary(x, y, n, [](T v) { return std::log(v); });
                case OpType::Log2: return map_unary(x, y, n, [](T v) { return std::log2(v); });
                case OpType::Log10: return map_unary(x, y, n, [](T v) { return std::log10(v); });
                case OpType::Log1p: return map_unary(x, y, n, [](T v) { return std::log1p(v); });
                case OpType::Sin: return map_unary(x, y, n, [](T v) { return std::sin(v); });
                case OpType::Cos: return map_unary(x, y, n, [](T v) { return std::cos(v); });
                case OpType::Tan: return map_unary(x, y, n, [](T v) { return std::tan(v); });
                case OpType::Asin: return map_unary(x, y, n, [](T v) { return std::asin(v); });
                case OpType::Acos: return map_unary(x, y, n, [](T v) { return std::acos(v); });
                case OpType::Atan: return map_unary(x, y, n, [](T v) { return std::atan(v); });
                case OpType::Sinh: return map_unary(x, y, n, [](T v) { return std::sinh(v); });
                case OpType::Cosh: return map_unary(x, y, n, [](T v) { return std::cosh(v); });
                case OpType::Tanh: return map_unary(x, y, n, [](T v) { return std::tanh(v); });
                case OpType::Asinh: return map_unary(x, y, n, [](T v) { return std::asinh(v); });
                case OpType::Acosh: return map_unary(x, y, n, [](T v) { return std::acosh(v); });
                case OpType::Atanh: return map_unary(x, y, n, [](T v) { return std::atanh(v); });
                case OpType::Erf: return map_unary(x, y, n, [](T v) { return std::erf(v); });
                case OpType::Erfc: return map_unary(x, y, n, [](T v) { return std::erfc(v); });
                case OpType::Erfinv: return map_unary(x, y, n, [](T v) { return T(erfinv_d(double(v))); });
                case OpType::Sigmoid: return map_unary(x, y, n, [](T v) { return T(1) / (T(1) + std::exp(-v)); });
                case OpType::Gelu: return map_unary(x, y, n, [](T v) { return T(0.5) * v * (T(1) + std::erf(v * T(0.70710678118654752440))); });
                case OpType::GeluTanh:
                    return map_unary(x, y, n, [](T v) {
                        return T(0.5) * v * (T(1) + std::tanh(T(0.79788456080286535588) * (v + T(0.044715) * v * v * v)));
                    });
                case OpType::Silu: return map_unary(x, y, n, [](T v) { return v / (T(1) + std::exp(-v)); });
                case OpType::Softplus: return map_unary(x, y, n, [](T v) { return v > T(0) ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v)); });
                case OpType::Softsign: return map_unary(x, y, n, [](T v) { return v / (T(1) + std::abs(v)); });
                default: break;
            }
        }
    }
    throw TypeError(fmt(op_def(op).name, ": no kernel for this dtype (internal error)"));
}

// ---- binary -------------------------------------------------------------------

// Applies f over broadcast inputs.  The common cases (same shape, a scalar
// side) are flat loops; the general case walks rows of the innermost axis.
template <typename TI, typename TO, typename F>
void map_binary(const Tensor& a, const Tensor& b, Tensor& out, F f) {
    const TI* pa = a.data<TI>();
    const TI* pb = b.data<TI>();
    TO* po = out.data<TO>();
    int64_t n = out.numel();
    if (n == 0) return;
    if (a.numel() == n && b.numel() == n) {
        parallel_for(n, kParallelGrain, [&](int64_t s, int64_t e) { for (int64_t i = s; i < e; ++i) po[i] = f(pa[i], pb[i]); });
        return;
    }
    if (b.numel() == 1 && a.numel() == n) {
        TI vb = pb[0];
        parallel_for(n, kParallelGrain, [&](int64_t s, int64_t e) { for (int64_t i = s; i < e; ++i) po[i] = f(pa[i], vb); });
        return;
    }
    if (a.numel() == 1 && b.numel() == n) {
        TI va = pa[0];
        parallel_for(n, kParallelGrain, [&](int64_t s, int64_t e) { for (int64_t i = s; i < e; ++i) po[i] = f(va, pb[i]); });
        return;
    }
    const Shape& os = out.shape();
    int nd = int(os.size());
    Shape sa = broadcast_strides(a.shape(), os), sb = broadcast_strides(b.shape(), os);
    int64_t inner = os[nd - 1], ia = sa[nd - 1], ib = sb[nd - 1];
    int64_t rows = n / inner;
    parallel_for(rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            int64_t rem = r, oa = 0, ob = 0;
            for (int d = nd - 2; d >= 0; --d) {
                int64_t idx = rem % os[d];
                rem /= os[d];
                oa += idx * sa[d];
                ob += idx * sb[d];
            }
            const TI* ra = pa + oa;
            const TI* rb = pb + ob;
            TO* ro = po + r * inner;
            if (ia == 1 && ib == 1) for (int64_t i = 0; i < inner; ++i) ro[i] = f(ra[i], rb[i]);
            else if (ia == 0 && ib == 1) { TI v = ra[0]; for (int64_t i = 0; i < inner; ++i) ro[i] = f(v, rb[i]); }
            else if (ia == 1 && ib == 0) { TI v = rb[0]; for (int64_t i = 0; i < inner; ++i) ro[i] = f(ra[i], v); }
            else for (int64_t i = 0; i < inner; ++i) ro[i] = f(ra[i * ia], rb[i * ib]);
        }
    });
}

template <typename T>
void binary_typed(OpType op, const Tensor& a, const Tensor& b, Tensor& out) {
    if (binary_to_bool(op)) {
        switch (op) {
            case OpType::Equal: return map_binary<T, bool>(a, b, out, [](T x, T y) { return x == y; });
            case OpType::NotEqual: return map_binary<T, bool>(a, b, out, [](T x, T y) { return x != y; });
            case OpType::Less: return map_binary<T, bool>(a, b, out, [](T x, T y) { return x < y; });
            case OpType::LessEqual: return map_binary<T, bool>(a, b, out, [](T x, T y) { return x <= y; });
            case OpType::Greater: return map_binary<T, bool>(a, b, out, [](T x, T y) { return x > y; });
            case OpType::GreaterEqual: return map_binary<T, bool>(a, b, out, [](T x, T y) { return x >= y; });
            case OpType::LogicalAnd: return map_binary<T, bool>(a, b, out, [](T x, T y) { return bool(x) && bool(y); });
            case OpType::LogicalOr: return map_binary<T, bool>(a, b, out, [](T x, T y) { return bool(x) || bool(y); });
            case OpType::LogicalXor: return map_binary<T, bool>(a, b, out, [](T x, T y) { return bool(x) != bool(y); });
            default: break;
        }
    }
    if constexpr (std::is_same_v<T, bool>) {
        switch (op) {
            case OpType::Add: case OpType::Maximum: case OpType::BitwiseOr:
                return map_binary<T, T>(a, b, out, [](T x, T y) { return x || y; });
            case OpType::Mul: case OpType::Minimum: case OpType::BitwiseAnd:
                return map_binary<T, T>(a, b, out, [](T x, T y) { return x && y; });
            case OpType::BitwiseXor: return map_binary<T, T>(a, b, out, [](T x, T y) { return x != y; });
            default: break;
        }
    } else {
        switch (op) {
            case OpType::Add: return map_binary<T, T>(a, b, out, [](T x, T y) { return T(x + y); });
            case OpType::Sub: return map_binary<T, T>(a, b, out, [](T x, T y) { return T(x - y); });
            case OpType::Mul: return map_binary<T, T>(a, b, out, [](T x, T y) { return T(x * y); });
            case OpType::FloorDiv: return map_binary<T, T>(a, b, out, [](T x, T y) { return py_floordiv(x, y); });
            case OpType::Mod: return map_binary<T, T>(a, b, out, [](T x, T y) { return py_mod(x, y); });
            case OpType::Fmod: return map_binary<T, T>(a, b, out, [](T x, T y) { return c_fmod(x, y); });
            case OpType::SquaredDiff: return map_binary<T, T>(a, b, out, [](T x, T y) { return T((x - y) * (x - y)); });
            case OpType::Maximum:
                if constexpr (std::is_floating_point_v<T>)
                    return map_binary<T, T>(a, b, out, [](T x, T y) { return (x != x || x > y) ? x : (y != y ? y : (x == y ? (std::signbit(x) ? y : x) : y)); });
                else return map_binary<T, T>(a, b, out, [](T x, T y) { return x > y ? x : y; });
            case OpType::Minimum:
                if constexpr (std::is_floating_point_v<T>)
                    return map_binary<T, T>(a, b, out, [](T x, T y) { return (x != x || x < y) ? x : (y != y ? y : (x == y ? (std::signbit(x) ? x : y) : y)); });
                else return map_binary<T, T>(a, b, out, [](T x, T y) { return x < y ? x : y; });
            case OpType::Pow:
                if constexpr (std::is_floating_point_v<T>) return map_binary<T, T>(a, b, out, [](T x, T y) { return std::pow(x, y); });
                else return map_binary<T, T>(a, b, out, [](T x, T y) { return int_pow(x, y); });
            default: break;
        }
        if constexpr (std::is_floating_point_v<T>) {
            switch (op) {
                case OpType::Div: return map_binary<T, T>(a, b, out, [](T x, T y) { return x / y; });
                case OpType::Atan2: return map_binary<T, T>(a, b, out, [](T x, T y) { return std::atan2(x, y); });
                case OpType::Hypot: return map_binary<T, T>(a, b, out, [](T x, T y) { return std::hypot(x, y); });
                case OpType::Copysign: return map_binary<T, T>(a, b, out, [](T x, T y) { return std::copysign(x, y); });
                default: break;
            }
        } else {
            switch (op) {
                case OpType::BitwiseAnd: return map_binary<T, T>(a, b, out, [](T x, T y) { return T(x & y); });
                case OpType::BitwiseOr: return map_binary<T, T>(a, b, out, [](T x, T y) { return T(x | y); });
                case OpType::BitwiseXor: return map_binary<T, T>(a, b, out, [](T x, T y) { return T(x ^ y); });
                case OpType::LeftShift: return map_binary<T, T>(a, b, out, [](T x, T y) { return shift_left(x, y); });
                case OpType::RightShift: return map_binary<T, T>(a, b, out, [](T x, T y) { return shift_right(x, y); });
                default: break;
            }
        }
    }
    throw TypeError(fmt(op_def(op).name, ": no kernel for dtype ", dtype_name(a.dtype()), " (internal error)"));
}

// ---- shape rules and kernels --------------------------------------------------

std::vector<TensorInfo> unary_infer(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    OpType op = attrs.op;
    DType t = in[0].dtype;
    const char* name = attrs.op_name;
    if (unary_float_only(op))
        MNN_CHECK_TYPE(is_float(t), name, ": expected a float input, got ", info_str(in[0]));
    if (op == OpType::BitwiseNot)
        MNN_CHECK_TYPE(!is_float(t), name, ": expected an integer or bool input, got ", info_str(in[0]));
    if (op == OpType::Neg || op == OpType::Sign || op == OpType::Abs || op == OpType::Square || op == OpType::Relu)
        MNN_CHECK_TYPE(t != DType::Bool, name, ": not defined for bool input ", info_str(in[0]),
                       " (use logical_not / logical ops)");
    return {TensorInfo{unary_to_bool(op) ? DType::Bool : t, in[0].shape}};
}

void unary_kernel(const Attrs& attrs, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    OpType op = attrs.op;
    int64_t n = in[0].numel();
    if (out[0].dtype() == DType::Bool && in[0].dtype() != DType::Bool) {
        MNN_DISPATCH_COMPUTE(in[0].dtype(), attrs.op_name, unary_typed<scalar_t, bool>(op, in[0].data<scalar_t>(), out[0].data<bool>(), n));
    } else {
        MNN_DISPATCH_COMPUTE(in[0].dtype(), attrs.op_name, unary_typed<scalar_t, scalar_t>(op, in[0].data<scalar_t>(), out[0].data<scalar_t>(), n));
    }
}

std::vector<TensorInfo> binary_infer(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    OpType op = attrs.op;
    const char* name = attrs.op_name;
    MNN_CHECK_TYPE(in[0].dtype == in[1].dtype, name, ": inputs must share a dtype after promotion, got ",
                   info_str(in[0]), " and ", info_str(in[1]));
    DType t = in[0].dtype;
    if (binary_float_only(op)) MNN_CHECK_TYPE(is_float(t), name, ": expected float inputs, got ", dtype_name(t));
    if (binary_int_only(op)) {
        bool ok = is_int(t) || (t == DType::Bool && op != OpType::LeftShift && op != OpType::RightShift);
        MNN_CHECK_TYPE(ok, name, ": expected integer inputs, got ", dtype_name(t));
    }
    if (t == DType::Bool && (op == OpType::Sub || op == OpType::FloorDiv || op == OpType::Mod || op == OpType::Fmod ||
                             op == OpType::Pow || op == OpType::SquaredDiff))
        throw TypeError(fmt(name, ": not defined for bool inputs"));
    Shape s = broadcast_shapes(in[0].shape, in[1].shape, name);
    return {TensorInfo{binary_to_bool(op) ? DType::Bool : t, s}};
}

void binary_kernel(const Attrs& attrs, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    MNN_DISPATCH_COMPUTE(in[0].dtype(), attrs.op_name, binary_typed<scalar_t>(attrs.op, in[0], in[1], out[0]));
}

std::vector<TensorInfo> where_infer(const Attrs&, const std::vector<TensorInfo>& in) {
    MNN_CHECK_TYPE(in[0].dtype == DType::Bool, "where: condition must be bool, got ", info_str(in[0]));
    MNN_CHECK_TYPE(in[1].dtype == in[2].dtype, "where: x and y must share a dtype after promotion, got ",
                   info_str(in[1]), " and ", info_str(in[2]));
    Shape s = broadcast_shapes(broadcast_shapes(in[0].shape, in[1].shape, "where"), in[2].shape, "where");
    return {TensorInfo{in[1].dtype, s}};
}

// Branch-free select: masks are often random, and a mispredicted branch per
// element costs ~10 ns; bit masking also lets the loop vectorise.
template <typename T>
inline T select(bool k, T a, T b) {
    using U = std::conditional_t<sizeof(T) == 1, uint8_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;
    static_assert(sizeof(T) == sizeof(U), "select: unexpected type size");
    U ua, ub;
    std::memcpy(&ua, &a, sizeof(T));
    std::memcpy(&ub, &b, sizeof(T));
    U m = U(0) - U(k);
    U r = (ua & m) | (ub & ~m);
    T out;
    std::memcpy(&out, &r, sizeof(T));
    return out;
}

template <typename T>
void where_typed(const Tensor& c, const Tensor& x, const Tensor& y, Tensor& out) {
    const Shape& os = out.shape();
    int64_t n = out.numel();
    const bool* pc = c.data<bool>();
    const T* px = x.data<T>();
    const T* py = y.data<T>();
    T* po = out.data<T>();
    if (n == 0) return;
    // Each input full-size or a scalar (the common case: masks, ReLU-style
    // gradients): one flat loop with a 0/1 stride per input.
    auto flat = [n](const Tensor& t) { return t.numel() == n || t.numel() == 1; };
    if (flat(c) && flat(x) && flat(y)) {
        int64_t ic = c.numel() == n && n > 1, ix = x.numel() == n && n > 1, iy = y.numel() == n && n > 1;
        parallel_for(n, kParallelGrain, [&](int64_t s, int64_t e) {
            for (int64_t i = s; i < e; ++i) {
                po[i] = select(pc[i * ic], px[i * ix], py[i * iy]);
            }
        });
        return;
    }
    // General broadcasting: rows of the innermost axis, offsets per row.
    Shape sc = broadcast_strides(c.shape(), os), sx = broadcast_strides(x.shape(), os), sy = broadcast_strides(y.shape(), os);
    int nd = int(os.size());
    int64_t inner = os[nd - 1], rows = n / inner;
    parallel_for(rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            int64_t rem = r, oc = 0, ox = 0, oy = 0;
            for (int d = nd - 2; d >= 0; --d) {
                int64_t idx = rem % os[d];
                rem /= os[d];
                oc += idx * sc[d]; ox += idx * sx[d]; oy += idx * sy[d];
            }
            const bool* rc = pc + oc;
            const T* rx = px + ox;
            const T* ry = py + oy;
            T* ro = po + r * inner;
            int64_t jc = sc[nd - 1], jx = sx[nd - 1], jy = sy[nd - 1];
            for (int64_t k = 0; k < inner; ++k) {
                ro[k] = select(rc[k * jc], rx[k * jx], ry[k * jy]);
            }
        }
    });
}

void where_kernel(const Attrs&, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    MNN_DISPATCH_COMPUTE(in[1].dtype(), "where", where_typed<scalar_t>(in[0], in[1], in[2], out[0]));
}

std::vector<TensorInfo> cast_infer(const Attrs& attrs, const std::vector<TensorInfo>& in) {
    return {TensorInfo{attrs.dtype("dtype"), in[0].shape}};
}

void cast_kernel(const Attrs&, const std::vector<Tensor>& in, std::vector<Tensor>& out) { cast_into(in[0], out[0]); }

// Float -> int conversion without undefined behaviour: NaN and out-of-range
// values become the type's minimum (what x86 produces, and NumPy with it).
template <typename To, typename From>
To convert(From v) {
    if constexpr (std::is_same_v<To, bool>) {
        return v != From(0);
    } else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
        double dv = double(v);
        constexpr double lo = double(std::numeric_limits<To>::min()), hi = double(std::numeric_limits<To>::max());
        if (dv >= lo && dv < hi + 1.0) return To(v);
        if (std::is_signed_v<To> || !(dv > -9.2e18 && dv < 9.2e18)) return std::numeric_limits<To>::min();
        return To(int64_t(dv));  // unsigned: wrap modulo 2^bits, as NumPy on x86
    } else {
        return To(v);
    }
}

template <typename From, typename To>
void convert_loop(const From* s, To* d, int64_t n) {
    parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) d[i] = convert<To>(s[i]); });
}

}  // namespace

// ---- shared helpers (common.h) -------------------------------------------------

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
    size_t n = std::max(a.size(), b.size());
    Shape out(n);
    for (size_t i = 0; i < n; ++i) {
        int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
        int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
        if (da != db && da != 1 && db != 1)
            throw ValueError(fmt(op, ": shapes ", shape_str(a), " and ", shape_str(b), " cannot be broadcast together"));
        out[i] = da == 1 ? db : da;
    }
    return out;
}

AxisLayout axis_layout(const Shape& s, int axis) {
    AxisLayout L{1, s[size_t(axis)], 1};
    for (int d = 0; d < axis; ++d) L.outer *= s[size_t(d)];
    for (size_t d = size_t(axis) + 1; d < s.size(); ++d) L.inner *= s[d];
    return L;
}

Shape broadcast_strides(const Shape& in, const Shape& out) {
    Shape st(out.size(), 0);
    Shape cs = contiguous_strides(in);
    size_t off = out.size() - in.size();
    for (size_t i = 0; i < in.size(); ++i) st[i + off] = in[i] == 1 ? 0 : cs[i];
    return st;
}

void cast_into(const Tensor& src, Tensor& dst) {
    int64_t n = src.numel();
    DType s = src.dtype(), d = dst.dtype();
    if (s == d) { std::memcpy(dst.raw(), src.raw(), src.nbytes()); return; }
    if (is_half(s)) {  // widen to float32 first
        Tensor f(DType::Float32, src.shape());
        const uint16_t* p = src.data<uint16_t>();
        float* q = f.data<float>();
        bool bf = s == DType::BFloat16;
        parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) q[i] = bf ? bf16_to_float(p[i]) : half_to_float(p[i]); });
        cast_into(f, dst);
        return;
    }
    if (d == DType::Float16 && s == DType::Float64) {
        const double* p = src.data<double>();
        uint16_t* q = dst.data<uint16_t>();
        parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) q[i] = double_to_half(p[i]); });
        return;
    }
    if (is_half(d)) {
        Tensor f = s == DType::Float32 ? src : Tensor(DType::Float32, src.shape());
        if (s != DType::Float32) cast_into(src, f);
        const float* p = f.data<float>();
        uint16_t* q = dst.data<uint16_t>();
        bool bf = d == DType::BFloat16;
        parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) q[i] = bf ? float_to_bf16(p[i]) : float_to_half(p[i]); });
        return;
    }
    MNN_DISPATCH_COMPUTE(s, "cast", {
        using From = scalar_t;
        const From* p = src.data<From>();
        MNN_DISPATCH_COMPUTE(d, "cast", convert_loop<From, scalar_t>(p, dst.data<scalar_t>(), n));
    });
}

Tensor cast_tensor(const Tensor& x, DType to) {
    if (x.dtype() == to) return x;
    Tensor y(to, x.shape());
    cast_into(x, y);
    return y;
}

void register_elementwise_ops() {
    for (const OpDef& d : declared_ops()) {
        if (d.category == Category::Unary) register_op(d.type, unary_infer, unary_kernel);
        if (d.category == Category::Binary) register_op(d.type, binary_infer, binary_kernel);
    }
    register_op(OpType::Where, where_infer, where_kernel);
    register_op(OpType::Cast, cast_infer, cast_kernel, /*half_native=*/true);
}

}  // namespace mnn
