// AVX-512F level of the vector math kernels (this file alone is compiled with
// -mavx512f -mavx2 -mfma; vmath.cc calls it only when the CPU has them).
// Algorithms and error bounds: vmath_impl.h.
#include "ops/vmath.h"

#if defined(MNN_GEMM_X86)
// GCC 12 warns "__Y may be used uninitialized" inside avx512fintrin.h (its
// _mm512_undefined_* helpers); a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "ops/vmath_impl.h"

namespace mnn::vmath {

namespace {

struct Avx512 {
    using F = __m512;
    using I = __m512i;
    using M = __mmask16;
    static constexpr int W = 16;
    static F set(float v) { return _mm512_set1_ps(v); }
    static F load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
    static __mmask16 tail_mask(int n) { return __mmask16((1u << n) - 1u); }
    static F load_part(const float* p, int n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
    static void store_part(float* p, F v, int n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
    static F add(F a, F b) { return _mm512_add_ps(a, b); }
    static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F div(F a, F b) { return _mm512_div_ps(a, b); }
    static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
    static F min(F a, F b) { return _mm512_min_ps(a, b); }  // b when a is NaN
    static F max(F a, F b) { return _mm512_max_ps(a, b); }
    static __m512i ibits(F a) { return _mm512_castps_si512(a); }
    static F fbits(__m512i a) { return _mm512_castsi512_ps(a); }
    static F neg(F a) { return fbits(_mm512_xor_epi32(ibits(a), _mm512_set1_epi32(int(0x80000000u)))); }
    static F abs(F a) { return fbits(_mm512_and_epi32(ibits(a), _mm512_set1_epi32(0x7fffffff))); }
    static F copysign(F mag, F sgn) {
        return fbits(_mm512_or_epi32(_mm512_and_epi32(ibits(mag), _mm512_set1_epi32(0x7fffffff)),
                                     _mm512_and_epi32(ibits(sgn), _mm512_set1_epi32(int(0x80000000u)))));
    }
    static M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
    static M le(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
    static M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
    static M ge(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
    static M eq(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
    static M isnan(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
    static F sel(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }
    static F round_i(F v, I& n) {
        F r = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        n = _mm512_cvtps_epi32(r);
        return r;
    }
    static F pow2i(I n) { return fbits(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23)); }
    static I ishr1(I n) { return _mm512_srai_epi32(n, 1); }
    static I isub(I a, I b) { return _mm512_sub_epi32(a, b); }
    static F exp_mant(F x, F& m) {
        __m512i u = ibits(x);
        m = fbits(_mm512_or_epi32(_mm512_and_epi32(u, _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x3f800000)));
        return _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(u, 23), _mm512_set1_epi32(127)));
    }
    static void sq_pair(F x, F& hi, F& lo) {
        hi = _mm512_mul_ps(x, x);
        lo = _mm512_fmsub_ps(x, x, hi);  // exact: x*x - hi
    }
    template <class G>
    static void dmap(F x, G g, F& hi, F& lo) {
        __m256 xa = _mm512_castps512_ps256(x);
        __m256 xb = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1));
        __m512d a = g(_mm512_cvtps_pd(xa)), b = g(_mm512_cvtps_pd(xb));
        __m256 ha = _mm512_cvtpd_ps(a), hb = _mm512_cvtpd_ps(b);
        __m256 la = _mm512_cvtpd_ps(_mm512_sub_pd(a, _mm512_cvtps_pd(ha)));
        __m256 lb = _mm512_cvtpd_ps(_mm512_sub_pd(b, _mm512_cvtps_pd(hb)));
        hi = join(ha, hb);
        lo = join(la, lb);
    }
    static F join(__m256 a, __m256 b) {
        return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(a)), _mm256_castps_pd(b), 1));
    }
};

}  // namespace

Table avx512_table() { return make_table<Avx512>(); }

}  // namespace mnn::vmath
#endif
