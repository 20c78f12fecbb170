// AVX2+FMA level of the vector math kernels (this file alone is compiled with
// -mavx2 -mfma; vmath.cc calls it only when the CPU has them).  Algorithms and
// error bounds: vmath_impl.h.
#include "ops/vmath.h"

#if defined(MNN_GEMM_X86)
#include <immintrin.h>

#include "ops/vmath_impl.h"

namespace mnn::vmath {

namespace {

struct Avx2 {
    using F = __m256;
    using I = __m256i;
    using M = __m256;
    static constexpr int W = 8;
    static F set(float v) { return _mm256_set1_ps(v); }
    static F load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
    static F load_part(const float* p, int n) {
        alignas(32) float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int i = 0; i < n; ++i) buf[i] = p[i];
        return _mm256_load_ps(buf);
    }
    static void store_part(float* p, F v, int n) {
        alignas(32) float buf[8];
        _mm256_store_ps(buf, v);
        for (int i = 0; i < n; ++i) p[i] = buf[i];
    }
    static F add(F a, F b) { return _mm256_add_ps(a, b); }
    static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    static F div(F a, F b) { return _mm256_div_ps(a, b); }
    static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
    static F min(F a, F b) { return _mm256_min_ps(a, b); }  // b when a is NaN
    static F max(F a, F b) { return _mm256_max_ps(a, b); }
    static F neg(F a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
    static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
    static F copysign(F mag, F sgn) {
        F s = _mm256_set1_ps(-0.0f);
        return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sgn));
    }
    static M lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
    static M le(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
    static M gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
    static M ge(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
    static M eq(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
    static M isnan(F a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
    static F sel(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
    static F round_i(F v, I& n) {
        F r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        n = _mm256_cvtps_epi32(r);
        return r;
    }
    static F pow2i(I n) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23)); }
    static I ishr1(I n) { return _mm256_srai_epi32(n, 1); }
    static I isub(I a, I b) { return _mm256_sub_epi32(a, b); }
    static F exp_mant(F x, F& m) {
        __m256i u = _mm256_castps_si256(x);
        m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(u, _mm256_set1_epi32(0x007fffff)),
                                                _mm256_set1_epi32(0x3f800000)));
        return _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(u, 23), _mm256_set1_epi32(127)));
    }
    static void sq_pair(F x, F& hi, F& lo) {
        hi = _mm256_mul_ps(x, x);
        lo = _mm256_fmsub_ps(x, x, hi);  // exact: x*x - hi
    }
    template <class G>
    static void dmap(F x, G g, F& hi, F& lo) {
        __m256d a = g(_mm256_cvtps_pd(_mm256_castps256_ps128(x)));
        __m256d b = g(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)));
        __m128 ha = _mm256_cvtpd_ps(a), hb = _mm256_cvtpd_ps(b);
        __m128 la = _mm256_cvtpd_ps(_mm256_sub_pd(a, _mm256_cvtps_pd(ha)));
        __m128 lb = _mm256_cvtpd_ps(_mm256_sub_pd(b, _mm256_cvtps_pd(hb)));
        hi = _mm256_set_m128(hb, ha);
        lo = _mm256_set_m128(lb, la);
    }
};

}  // namespace

Table avx2_table() { return make_table<Avx2>(); }

}  // namespace mnn::vmath
#endif
