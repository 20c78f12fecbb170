// Vector math algorithms, written once over a SIMD "traits" type S and
// instantiated per ISA (vmath.cc: scalar float that the compiler
// auto-vectorises; vmath_avx2.cc; vmath_avx512.cc).  Include this header only
// from those files, with S defined in an anonymous namespace, so every
// instantiation has internal linkage and is compiled with its file's flags.
//
// S provides: types F (float vector), I (int32 vector), M (mask); W (lanes);
// set, add, sub, mul, div, fma (a*b+c; fused where the ISA has it), min/max
// (returning b when a is NaN), abs, neg, copysign, lt/le/gt/ge/eq, isnan,
// sel(m, a, b) (a where m), round_i (round to nearest even, also as int),
// pow2i (2^n for n in [-126, 127]), ishr1, isub, exp_mant (exponent and
// mantissa in [1, 2) of a positive normal), dmap (a function evaluated in
// double precision and returned as a float pair hi + lo), sq_pair (x^2 as a
// float pair: exact by FMA, else by Dekker's split to ~2^-35), load/store and a
// partial load/store for tails.
//
// Algorithms and error bounds.  Error = |y - f(x)| / ulp(f(x)) against the
// float64 reference, ulp(v) = 2^(floor(log2|v|) - 23), taken as 2^-149 below
// 2^-126, so subnormal results meet the same bound in absolute terms (nothing
// is flushed to zero).  "bound" is what tests/test_vmath.py asserts at every
// level; "seen" the worst found on its grids and 2e6 random bit patterns per
// function (generic / SIMD levels: generic has no FMA).
//   exp       Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2 (ln2 split in a
//             9-bit head and a tail so n*ln2_hi is exact), e^r = 1 + r +
//             r^2 P4(r) (minimax, fitted for float32 coefficients), scaled by
//             2^(n/2) * 2^(n - n/2) so results in the subnormal range are
//             rounded once (gradual underflow).  exp(x > 88.72) = +inf,
//             exp(x < -103.98) = +0, NaN -> NaN.      bound 1.5, seen 1.01
//   log       x = 2^e m, m in [sqrt(1/2), sqrt(2)) (subnormal inputs scaled
//             by 2^23 first), f = m - 1 (exact), log1p(f) = f - f^2/2 +
//             f^3 P6(f), plus e ln2 in two parts.  log(+-0) = -inf, log(<0)
//             = NaN, log(inf) = inf.  The bound is relative to the result, so
//             near x = 1 it bounds the relative error (f is exact there).
//                                                     bound 1.5, seen 1.12
//   tanh      |x| < 0.625: x + x^3 P4(x^2); else 1 - 2/(e^{2|x|} + 1); sign of
//             x copied (tanh(-0) = -0); saturates to +-1.  bound 2, seen 1.32
//   sigmoid   e = e^{-|x|}; 1/(1 + e) for x >= 0, e/(1 + e) for x < 0, so
//             large negative x gives the tiny (subnormal) positive result,
//             then +0; never NaN.                     bound 3, seen 2.33
//   silu      x sigmoid(x), the e^{-|x|} scale applied last; silu(-inf) = -0
//             (the limit).                            bound 4, seen 3.22
//   erf       |x| < 1: c1 x + x^3 P4(x^2) with c1 = 2/sqrt(pi) as a float
//             pair; else 1 - e^{-x^2} erfcx(|x|), where e^{-x^2} takes x^2
//             exactly (a float pair: by FMA, or Dekker's split at generic) and
//             z erfcx(z) = P10(t), t = (z - 1.5)/(z + 1.5), fitted on z in
//             [0.5, 10].  Odd (erf(-0) = -0).      bound 3, seen 2.78 / 1.81
//   gelu      x Phi(x): Phi(x) = 0.5 e^{-x^2/2} erfcx(|x|/sqrt2) for x <
//             -sqrt(1/2) (no cancellation, so the tiny negative tail is
//             accurate), 1 - that for x >= sqrt2, 0.5 + 0.5 erf(x/sqrt2)
//             between.  gelu(x < -20) = -0 (it underflows below -14), so
//             gelu(-inf) = -0.                        bound 5, seen 4.41
//   gelu_tanh x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): equal to
//             0.5 x (1 + tanh u) but without its cancellation for x < 0; 2u
//             is evaluated in double and carried as a float pair into exp.
//             gelu_tanh(-inf) = -0.                   bound 4, seen 3.11
//   expm1     2^n (e^r - 1) + (2^n - 1) with the same reduction and an e^r - 1
//             polynomial r + r^2 P5(r) fitted for relative error (n = 0 near
//             0, so expm1(x) ~ x is accurate for tiny x); e^x for x > 20; -1
//             below -30; expm1(-0) = -0.             bound 2, seen 1.43
//   log1p     on [sqrt(1/2) - 1, sqrt2 - 1] the log polynomial of x itself;
//             elsewhere log(u), u = 1 + x, plus (x - (u - 1))/u for the
//             rounding of u.  log1p(-1) = -inf, < -1 NaN.  bound 2, seen 1.53
//   softplus  max(x, 0) + log1p(e^{-|x|}) (overflow-free; log(1 + e^x) for
//             x < 0 keeps the tiny tail).             bound 2, seen 1.77
// NaN inputs give NaN everywhere.
#pragma once
#include <cstdint>

namespace mnn::vmath {

// Coefficients: our own fits (iteratively reweighted least squares towards the
// minimax relative error on Chebyshev nodes, each coefficient rounded to
// float32 in turn and the remaining ones refitted).
namespace k {
// exp: e^r ~ 1 + r + r^2 (c2 + r (c3 + r (c4 + r (c5 + r c6)))) on |r| <= ln2/2.
constexpr float kExp[5] = {0x1.fffffcp-2f, 0x1.555494p-3f, 0x1.5558bep-5f, 0x1.123856p-7f, 0x1.6a3d04p-10f};
// log1p(f) ~ f - f^2/2 + f^3 (c3 + f (c4 + ... + f c9)) on f in [sqrt(1/2) - 1, sqrt2 - 1].
constexpr float kLog[7] = {0x1.5556d8p-2f,  -0x1.00038p-2f,  0x1.98d824p-3f, -0x1.5382a4p-3f,
                           0x1.3172fap-3f, -0x1.242fdp-3f, 0x1.645e52p-4f};
// expm1(r) ~ r + r^2 (c2 + r (c3 + ... + r c7)) on |r| <= ln2/2 (relative error).
constexpr float kExpm1[6] = {0x1p-1f, 0x1.555554p-3f, 0x1.5554f8p-5f, 0x1.1112dcp-7f, 0x1.6d3a2ep-10f, 0x1.9e6ae6p-13f};
// tanh(x) ~ x + x^3 (c3 + x^2 (c5 + ...)) on |x| <= 0.625.
constexpr float kTanh[5] = {-0x1.555532p-2f, 0x1.1106f6p-3f, -0x1.b835a4p-5f, 0x1.51f8cep-6f, -0x1.750ce2p-8f};
// erf(x) ~ c1 x + x^3 (c3 + x^2 (c5 + ...)) on |x| <= 1, c1 = 2/sqrt(pi) = kErfC1 + kErfC1Lo.
constexpr float kErfC1 = 0x1.20dd76p+0f;
constexpr float kErfC1Lo = -0x1.f7ac92p-25f;
constexpr float kErf[5] = {-0x1.8126b2p-2f, 0x1.ce0e98p-4f, -0x1.b5d3bp-6f, 0x1.43064ap-8f, -0x1.29677ep-11f};
// z erfcx(z) = z e^{z^2} erfc(z) ~ sum c_i t^i, t = (z - 1.5)/(z + 1.5), z in [0.5, 10]
// (z erfcx(z) tends to 1/sqrt(pi), so rounding in t hardly moves it).
constexpr float kZErfcx[11] = {0x1.edf488p-2f,  0x1.d3df3ap-3f,   -0x1.ba9a14p-3f, 0x1.f96828p-5f,
                               0x1.44d8a8p-6f,  -0x1.2014c2p-7f,  -0x1.527cb8p-8f, 0x1.03636ep-11f,
                               0x1.7dcaap-10f,  0x1.576efcp-12f,  -0x1.826bc8p-12f};
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;        // 9 significant bits: n * kLn2Hi is exact for |n| < 2^15
constexpr float kLn2Lo = -2.12194440e-4f;     // ln2 - kLn2Hi
constexpr float kSqrt2 = 1.41421356237309505f;
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kFltMin = 0x1p-126f;
constexpr double kGeluTanhK2 = 2 * 0.79788456080286535588;  // 2 sqrt(2/pi)
constexpr double kGeluTanhC = 0.044715;
}  // namespace k

template <class S>
struct Math {
    using F = typename S::F;
    using M = typename S::M;
    using I = typename S::I;

    template <int N>
    static F horner(F x, const float (&c)[N]) {
        F p = S::set(c[N - 1]);
        for (int i = N - 2; i >= 0; --i) p = S::fma(p, x, S::set(c[i]));
        return p;
    }

    // e^(hi + lo) = a * b for a float pair with |lo| << |hi| (HasLo = false:
    // plain e^hi, lo ignored): a = p 2^(n/2) is normal (or NaN for NaN) and b =
    // 2^(n - n/2) a power of two, so callers that scale the result (x e^x)
    // multiply by b last and round a subnormal result only once.
    template <bool HasLo = true>
    static void exp_parts(F hi, F lo, F& a, F& b) {
        F x = HasLo ? S::add(hi, lo) : hi;
        // Clamped so that n in [-174, 129]: both halves of 2^n stay normal.
        F xc = S::min(S::max(x, S::set(-120.0f)), S::set(89.0f));  // NaN -> 89 (fixed below)
        F hc = HasLo ? S::min(S::max(hi, S::set(-120.0f)), S::set(89.0f)) : xc;
        I n;
        F nf = S::round_i(S::mul(xc, S::set(k::kLog2e)), n);
        F r = S::fma(nf, S::set(-k::kLn2Hi), hc);
        r = S::fma(nf, S::set(-k::kLn2Lo), r);
        if (HasLo) r = S::add(r, lo);
        F p = S::fma(S::mul(r, r), horner(r, k::kExp), r);
        p = S::add(p, S::set(1.0f));
        I n1 = S::ishr1(n);
        a = S::sel(S::isnan(x), x, S::mul(p, S::pow2i(n1)));
        b = S::pow2i(S::isub(n, n1));
    }
    static F exp2part(F hi, F lo) {
        F a, b;
        exp_parts(hi, lo, a, b);
        return S::mul(a, b);
    }
    static F exp(F x) {
        F a, b;
        exp_parts<false>(x, x, a, b);
        return S::mul(a, b);
    }

    // log1p(f) for f in [sqrt(1/2) - 1, sqrt2 - 1].
    static F log1p_poly(F f) {
        F f2 = S::mul(f, f);
        return S::add(f, S::fma(S::mul(f2, f), horner(f, k::kLog), S::mul(f2, S::set(-0.5f))));
    }
    // log(x) for x > 0 finite (no special values).
    static F log_core(F x) {
        M sub = S::lt(x, S::set(k::kFltMin));
        F xs = S::sel(sub, S::mul(x, S::set(0x1p23f)), x);
        F m;
        F e = S::exp_mant(xs, m);
        e = S::sub(e, S::sel(sub, S::set(23.0f), S::set(0.0f)));
        M big = S::gt(m, S::set(k::kSqrt2));
        m = S::sel(big, S::mul(m, S::set(0.5f)), m);
        e = S::sel(big, S::add(e, S::set(1.0f)), e);
        F y = log1p_poly(S::sub(m, S::set(1.0f)));
        return S::add(S::fma(e, S::set(k::kLn2Lo), y), S::mul(e, S::set(k::kLn2Hi)));
    }
    static F log(F x) {
        F y = log_core(x);
        const float inf = __builtin_inff();
        y = S::sel(S::lt(x, S::set(0.0f)), S::set(__builtin_nanf("")), y);
        y = S::sel(S::eq(x, S::set(0.0f)), S::set(-inf), y);
        y = S::sel(S::eq(x, S::set(inf)), x, y);
        return S::sel(S::isnan(x), x, y);
    }

    static F log1p(F x) {
        // Near 0 the polynomial takes x itself; elsewhere log(u) for u = 1 + x
        // plus the first-order correction (x - (u - 1)) / u for the rounding of u.
        F u = S::add(S::set(1.0f), x);
        F c = S::div(S::sub(x, S::sub(u, S::set(1.0f))), u);
        F y = S::add(log_core(u), c);
        M small = S::lt(S::abs(S::sub(x, S::set(0.0606601718f))), S::set(0.3535533906f));  // [sqrt(1/2)-1, sqrt2-1]
        y = S::sel(small, log1p_poly(x), y);
        const float inf = __builtin_inff();
        y = S::sel(S::lt(x, S::set(-1.0f)), S::set(__builtin_nanf("")), y);
        y = S::sel(S::eq(x, S::set(-1.0f)), S::set(-inf), y);
        y = S::sel(S::eq(x, S::set(inf)), x, y);
        y = S::sel(S::eq(x, S::set(0.0f)), x, y);  // keeps log1p(-0) = -0
        return S::sel(S::isnan(x), x, y);
    }

    static F expm1(F x) {
        // e^x - 1 = 2^n (e^r - 1) + (2^n - 1), n = round(x / ln2), with e^r - 1
        // from its own polynomial (relative accuracy near 0; n = 0 there).
        F xc = S::min(S::max(x, S::set(-30.0f)), S::set(20.0f));  // NaN -> 20 (fixed below)
        I n;
        F nf = S::round_i(S::mul(xc, S::set(k::kLog2e)), n);
        F r = S::fma(nf, S::set(-k::kLn2Hi), xc);
        r = S::fma(nf, S::set(-k::kLn2Lo), r);
        F pm1 = S::fma(S::mul(r, r), horner(r, k::kExpm1), r);
        F t = S::pow2i(n);
        F y = S::fma(t, pm1, S::sub(t, S::set(1.0f)));
        y = S::sel(S::gt(x, S::set(20.0f)), exp(x), y);  // e^x - 1 rounds to e^x there
        y = S::sel(S::eq(x, S::set(0.0f)), x, y);        // keeps expm1(-0) = -0
        return S::sel(S::isnan(x), x, y);
    }

    static F softplus(F x) {
        // max(x, 0) + log1p(e^{-|x|}); the log1p argument is in (0, 1].
        F e = exp(S::neg(S::abs(x)));
        F l = log1p(e);
        F y = S::add(S::max(x, S::set(0.0f)), l);
        return S::sel(S::isnan(x), x, y);
    }

    static F tanh(F x) {
        F a = S::abs(x);
        F x2 = S::mul(x, x);
        F ps = S::fma(S::mul(x, x2), horner(x2, k::kTanh), x);
        F E = exp(S::add(a, a));
        F pb = S::sub(S::set(1.0f), S::div(S::set(2.0f), S::add(E, S::set(1.0f))));
        return S::copysign(S::sel(S::lt(a, S::set(0.625f)), ps, pb), x);  // odd: keeps tanh(-0) = -0
    }

    // m * sigmoid(hi + lo) (lo = 0 for a plain float), rounding a subnormal
    // result once.
    template <bool HasLo = true>
    static F mul_sigmoid2part(F m, F hi, F lo) {
        M neg = S::lt(hi, S::set(0.0f));
        F a, b;
        if (HasLo) exp_parts<true>(S::sel(neg, hi, S::neg(hi)), S::sel(neg, lo, S::neg(lo)), a, b);  // e^{-|v|} = a b
        else exp_parts<false>(S::neg(S::abs(hi)), lo, a, b);
        F q = S::div(S::sel(neg, S::mul(m, a), m), S::fma(a, b, S::set(1.0f)));  // m e/(1+e) / b or m/(1+e)
        F y = S::sel(neg, S::mul(q, b), q);
        // Below -110, e^v (clamped at e^-120 above) times any finite m rounds to 0.
        return S::sel(S::lt(hi, S::set(-110.0f)), S::mul(m, S::set(0.0f)), y);
    }
    static F sigmoid(F x) { return mul_sigmoid2part<false>(S::set(1.0f), x, x); }

    static F silu(F x) {
        F y = mul_sigmoid2part<false>(x, x, x);
        return S::sel(S::eq(x, S::set(-__builtin_inff())), S::set(-0.0f), y);
    }

    // x (c1 + x^2 Q(x^2)), c1 = 2/sqrt(pi) carried as a float pair.
    static F erf_small(F x) {
        F q = S::fma(S::mul(x, x), horner(S::mul(x, x), k::kErf), S::set(k::kErfC1Lo));
        return S::fma(x, S::set(k::kErfC1), S::mul(x, q));
    }
    static F erfcx(F z) {  // z in [0.5, 10]
        F t = S::div(S::sub(z, S::set(1.5f)), S::add(z, S::set(1.5f)));
        return S::div(horner(t, k::kZErfcx), z);
    }
    // e^{-x^2} with x^2 taken exactly as a float pair.
    static F exp_neg_sq(F x) {
        F hi, lo;
        S::sq_pair(x, hi, lo);
        return exp2part(S::neg(hi), S::neg(lo));
    }

    static F erf(F x) {
        F a = S::min(S::abs(x), S::set(6.0f));  // NaN -> 6 (fixed below); erf(6) rounds to 1
        F z = S::max(a, S::set(1.0f));
        F tail = S::sub(S::set(1.0f), S::mul(exp_neg_sq(z), erfcx(z)));
        F y = S::copysign(S::sel(S::lt(a, S::set(1.0f)), erf_small(x), tail), x);  // odd: erf(-0) = -0
        return S::sel(S::isnan(x), x, y);
    }

    static F gelu(F x) {
        F xc = S::min(S::max(x, S::set(-20.0f)), S::set(20.0f));
        F z = S::mul(S::abs(xc), S::set(k::kInvSqrt2));
        F zc = S::min(S::max(z, S::set(0.5f)), S::set(10.0f));
        F hi, lo, a, b;
        S::sq_pair(xc, hi, lo);
        hi = S::mul(hi, S::set(-0.5f));                             // exact
        lo = S::mul(lo, S::set(-0.5f));
        exp_parts(hi, lo, a, b);                                   // e^{-x^2/2} = a b
        F qa = S::mul(S::mul(S::set(0.5f), a), erfcx(zc));         // 1 - Phi(|x|) = qa b
        F mid = S::fma(S::set(0.5f), erf_small(S::mul(xc, S::set(k::kInvSqrt2))), S::set(0.5f));
        F y = S::mul(x, mid);
        y = S::sel(S::lt(xc, S::set(-k::kInvSqrt2)), S::mul(S::mul(x, qa), b), y);
        y = S::sel(S::ge(xc, S::set(k::kSqrt2)), S::mul(x, S::sub(S::set(1.0f), S::mul(qa, b))), y);
        return S::sel(S::lt(x, S::set(-20.0f)), S::set(-0.0f), y);  // gelu(x < -14) underflows; -inf too
    }

    static F gelu_tanh(F x) {
        F xc = S::min(S::max(x, S::set(-20.0f)), S::set(20.0f));
        F hi, lo;
        S::dmap(xc, [](auto d) { return d * (k::kGeluTanhK2 + (k::kGeluTanhK2 * k::kGeluTanhC) * (d * d)); }, hi, lo);
        F y = mul_sigmoid2part(x, hi, lo);
        return S::sel(S::eq(x, S::set(-__builtin_inff())), S::set(-0.0f), y);
    }
};

// y[i] = Fn(x[i]) over whole vectors, then the tail with a partial load/store.
template <class S, typename S::F (*Fn)(typename S::F)>
void apply(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + S::W <= n; i += S::W) S::store(y + i, Fn(S::load(x + i)));
    if (i < n) S::store_part(y + i, Fn(S::load_part(x + i, int(n - i))), int(n - i));
}

template <class S>
Table make_table() {
    using MS = Math<S>;
    return Table{&apply<S, &MS::exp>,       &apply<S, &MS::log>,   &apply<S, &MS::tanh>,
                 &apply<S, &MS::sigmoid>,   &apply<S, &MS::silu>,  &apply<S, &MS::gelu>,
                 &apply<S, &MS::gelu_tanh>, &apply<S, &MS::erf>,   &apply<S, &MS::expm1>,
                 &apply<S, &MS::log1p>,     &apply<S, &MS::softplus>};
}

}  // namespace mnn::vmath
