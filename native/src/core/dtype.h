// DType: the element types a Tensor can hold, their sizes, names and the
// promotion rule (NumPy 2 / NEP 50, with float32 as the default float).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace mnn {

enum class DType : uint8_t { Bool, Int8, UInt8, Int32, Int64, Float16, BFloat16, Float32, Float64 };
constexpr int kNumDTypes = 9;

inline size_t dtype_size(DType t) {
    switch (t) {
        case DType::Bool: case DType::Int8: case DType::UInt8: return 1;
        case DType::Float16: case DType::BFloat16: return 2;
        case DType::Int32: case DType::Float32: return 4;
        default: return 8;
    }
}
const char* dtype_name(DType t);
bool dtype_from_name(const std::string& s, DType* out);

inline bool is_float(DType t) { return t >= DType::Float16; }
inline bool is_half(DType t) { return t == DType::Float16 || t == DType::BFloat16; }
inline bool is_int(DType t) { return t >= DType::Int8 && t <= DType::Int64; }
inline bool is_signed_int(DType t) { return t == DType::Int8 || t == DType::Int32 || t == DType::Int64; }

// Strong (array) promotion: the smallest type both values fit, as NumPy 2.
DType promote(DType a, DType b);

// Kinds for weak (Python scalar) operands, NEP 50.
enum class ScalarKind : uint8_t { Bool, Int, Float };
// Result dtype of `array(t) op python_scalar(kind)`: the array's dtype wins
// within its kind; an int array meeting a float scalar becomes float32 (our
// default float, where NumPy would pick float64).
DType promote_weak(DType t, ScalarKind k);

// ---- half-precision storage ----------------------------------------------------
struct half_t { uint16_t bits; };
struct bfloat16_t { uint16_t bits; };

inline float half_to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, out;
    if (exp == 0) {
        if (man == 0) out = sign;
        else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; --exp; }
            out = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) out = sign | 0x7f800000 | (man << 13);
    else out = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f; std::memcpy(&f, &out, 4); return f;
}
inline uint16_t float_to_half(float f) {  // round to nearest even
    uint32_t x; std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) return uint16_t(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));
    if (ax >= 0x477ff000) return uint16_t(sign | 0x7c00);  // overflow to inf
    if (ax < 0x38800000) {  // subnormal or zero
        if (ax < 0x33000000) return uint16_t(sign);
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000, shift = 126 - e;
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) ++r;
        return uint16_t(sign | r);
    }
    uint32_t r = ax + 0xc8000fff + ((ax >> 13) & 1);  // rebias exponent and round
    return uint16_t(sign | (r >> 13));
}
// Rounds a double to float16 directly (going through float32 would round twice).
inline uint16_t double_to_half(double d) {
    uint16_t sign = std::signbit(d) ? 0x8000 : 0;
    double a = std::fabs(d);
    if (std::isnan(d)) return uint16_t(sign | 0x7e00);
    if (a >= 65520.0) return uint16_t(sign | 0x7c00);  // rounds to inf (65504 is the largest half)
    if (a < 6.103515625e-05) {                          // subnormal: units of 2^-24
        double q = std::nearbyint(a * 16777216.0);
        return uint16_t(sign | uint16_t(q));            // q == 1024 is the smallest normal, encoded alike
    }
    int e;
    std::frexp(a, &e);                                  // a = m * 2^e, m in [0.5, 1)
    int E = e - 1;                                      // a in [2^E, 2^(E+1))
    double q = std::nearbyint(std::ldexp(a, 10 - E));   // in [1024, 2048]
    if (q >= 2048.0) { q = 1024.0; ++E; }
    if (E > 15) return uint16_t(sign | 0x7c00);
    return uint16_t(sign | uint16_t((E + 15) << 10) | uint16_t(int(q) - 1024));
}

inline float bf16_to_float(uint16_t h) { uint32_t x = uint32_t(h) << 16; float f; std::memcpy(&f, &x, 4); return f; }
inline uint16_t float_to_bf16(float f) {
    uint32_t x; std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return uint16_t((x >> 16) | 0x40);  // quiet NaN
    return uint16_t((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

// Calls body with `scalar_t` bound to the C++ type of dtype `t`, for every
// dtype that kernels compute in (halves are widened to float by the executor).
#define MNN_DISPATCH_CASE(ENUM, TYPE, ...) case ::mnn::DType::ENUM: { using scalar_t = TYPE; __VA_ARGS__; break; }
#define MNN_DISPATCH_COMPUTE(t, NAME, ...)                                              \
    switch (t) {                                                                        \
        MNN_DISPATCH_CASE(Bool, bool, __VA_ARGS__)                                      \
        MNN_DISPATCH_CASE(Int8, int8_t, __VA_ARGS__)                                    \
        MNN_DISPATCH_CASE(UInt8, uint8_t, __VA_ARGS__)                                  \
        MNN_DISPATCH_CASE(Int32, int32_t, __VA_ARGS__)                                  \
        MNN_DISPATCH_CASE(Int64, int64_t, __VA_ARGS__)                                  \
        MNN_DISPATCH_CASE(Float32, float, __VA_ARGS__)                                  \
        MNN_DISPATCH_CASE(Float64, double, __VA_ARGS__)                                 \
        default: throw ::mnn::TypeError(std::string(NAME) + ": unsupported dtype " + ::mnn::dtype_name(t)); \
    }
#define MNN_DISPATCH_FLOAT(t, NAME, ...)                                                \
    switch (t) {                                                                        \
        MNN_DISPATCH_CASE(Float32, float, __VA_ARGS__)                                  \
        MNN_DISPATCH_CASE(Float64, double, __VA_ARGS__)                                 \
        default: throw ::mnn::TypeError(std::string(NAME) + ": expected a float dtype, got " + ::mnn::dtype_name(t)); \
    }

}  // namespace mnn
