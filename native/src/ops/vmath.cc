// Generic (portable C++) level of the vector math kernels and the per-level
// dispatch.  The traits below are plain scalar float code without branches or
// library calls, so the loop in apply<> auto-vectorises with the baseline ISA
// (SSE2 on x86-64).  Algorithms and error bounds: vmath_impl.h.
#include "ops/vmath.h"

#include <cstring>

#include "ops/vmath_impl.h"

namespace mnn::vmath {

namespace {

struct Generic {
    using F = float;
    using I = int32_t;
    using M = bool;
    static constexpr int W = 1;
    static uint32_t bits(float v) { uint32_t u; std::memcpy(&u, &v, 4); return u; }
    static float from_bits(uint32_t u) { float v; std::memcpy(&v, &u, 4); return v; }
    static F set(float v) { return v; }
    static F load(const float* p) { return *p; }
    static void store(float* p, F v) { *p = v; }
    static F load_part(const float* p, int) { return *p; }
    static void store_part(float* p, F v, int) { *p = v; }
    static F add(F a, F b) { return a + b; }
    static F sub(F a, F b) { return a - b; }
    static F mul(F a, F b) { return a * b; }
    static F div(F a, F b) { return a / b; }
    static F fma(F a, F b, F c) { return a * b + c; }
    static F min(F a, F b) { return a < b ? a : b; }
    static F max(F a, F b) { return a > b ? a : b; }
    static F neg(F a) { return -a; }
    static F abs(F a) { return from_bits(bits(a) & 0x7fffffffu); }
    static F copysign(F mag, F sgn) { return from_bits((bits(mag) & 0x7fffffffu) | (bits(sgn) & 0x80000000u)); }
    static M lt(F a, F b) { return a < b; }
    static M le(F a, F b) { return a <= b; }
    static M gt(F a, F b) { return a > b; }
    static M ge(F a, F b) { return a >= b; }
    static M eq(F a, F b) { return a == b; }
    static M isnan(F a) { return a != a; }
    static F sel(M m, F a, F b) { return m ? a : b; }
    // Round to nearest even with the 1.5*2^23 trick (|v| < 2^22 here).
    static F round_i(F v, I& n) {
        constexpr float magic = 0x1.8p23f;
        float t = v + magic;
        n = int32_t(bits(t) - bits(magic));
        return t - magic;
    }
    static F pow2i(I n) { return from_bits(uint32_t(n + 127) << 23); }
    static I ishr1(I n) { return n >> 1; }
    static I isub(I a, I b) { return a - b; }
    static F exp_mant(F x, F& m) {
        uint32_t u = bits(x);
        m = from_bits((u & 0x007fffffu) | 0x3f800000u);
        return float(int32_t(u >> 23) - 127);
    }
    // x^2 = hi + lo by Dekker's split (no FMA here): xh keeps the top 12
    // significand bits, so hi = xh^2 is exact; lo = (x - xh)(x + xh) is ~2^-11
    // of hi and rounded only in its own last bit (x^2 to ~2^-35 relative).
    static void sq_pair(F x, F& hi, F& lo) {
        F xh = from_bits(bits(x) & 0xfffff000u);
        hi = xh * xh;
        lo = (x - xh) * (x + xh);
    }
    template <class G>
    static void dmap(F x, G g, F& hi, F& lo) {
        double d = g(double(x));
        hi = float(d);
        lo = float(d - double(hi));
    }
};

}  // namespace

Table generic_table() { return make_table<Generic>(); }

const Table& table(CpuLevel level) {
    static const Table generic = generic_table();
#if defined(MNN_GEMM_X86)
    static const Table avx2 = avx2_table();
    static const Table avx512 = avx512_table();
    if (level == CpuLevel::Avx512) return avx512;
    if (level == CpuLevel::Avx2) return avx2;
#endif
    (void)level;
    return generic;
}

}  // namespace mnn::vmath
