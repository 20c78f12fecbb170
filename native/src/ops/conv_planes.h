// Zero-padded phase planes: the input of a convolution laid out so that every
// tap of every output position is one flattened offset (conv_gemm.cc,
// conv_depthwise.cc).
//
// For stride (sh, sw) the padded input splits into sh*sw phases,
// plane[a][b][r][q] = xpad[r*sh + a][q*sw + b]; tap (i, j) of output (oh, ow)
// reads xpad[oh*sh + i*dh][ow*sw + j*dw] = plane[(i*dh) % sh][(j*dw) % sw]
// [oh + (i*dh) / sh][ow + (j*dw) / sw].  With the planes' rows Wp = OW +
// max_j (j*dw)/sw wide, output position q = oh*Wp + ow (the "wide" layout:
// Wp - OW extra columns per row, computed and dropped) reads element
// q + off[tap] of its phase plane: a convolution becomes a 1-d correlation
// with a table of tap offsets, and a GEMM's B rows are contiguous runs.
// Stride 1 has one phase; a 1x1 stride-1 unpadded convolution reads the input
// itself (`identity`).
#pragma once
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ops/conv_common.h"
#include "ops/simd_span.h"

namespace mnn {
namespace convgeom {

struct Planes {
    int64_t S = 1;        // phases (sh * sw)
    int64_t Hr = 0, Wp = 0;  // rows and row length of a phase plane
    int64_t PL = 0;       // elements per plane (Hr * Wp + slack for over-reads)
    int64_t Q = 0;        // wide output positions, OH * Wp
    bool identity = false;  // the planes are the input itself (1x1, stride 1, no padding)
    std::vector<char> used;        // per phase: read by some tap
    std::vector<int64_t> tap_off;  // per tap i*kw + j: phase * PL + row * Wp + column
};

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// `slack`: elements readable past the end of a plane's rows (a kernel's vector over-reads);
// `allow_identity`: a 1x1 stride-1 unpadded convolution may read the input itself (no slack then).
inline Planes make_planes(const DirectConv& d, int64_t slack, bool allow_identity) {
    Planes p;
    const bool no_pad = d.pt == 0 && d.pl == 0 && d.OH == d.H && d.OW == d.W;
    if (allow_identity && d.kh == 1 && d.kw == 1 && d.sh == 1 && d.sw == 1 && no_pad) {
        p.identity = true;
        p.S = 1;
        p.Hr = d.H;
        p.Wp = d.W;
        p.PL = d.H * d.W;
        p.Q = p.PL;
        p.used = {1};
        p.tap_off = {0};
        return p;
    }
    p.S = d.sh * d.sw;
    int64_t rmax = 0, smax = 0;
    for (int64_t i = 0; i < d.kh; ++i) rmax = std::max(rmax, i * d.dh / d.sh);
    for (int64_t j = 0; j < d.kw; ++j) smax = std::max(smax, j * d.dw / d.sw);
    p.Hr = d.OH + rmax;
    p.Wp = d.OW + smax;
    p.Q = d.OH * p.Wp;
    p.PL = (p.Hr * p.Wp + slack + 15) / 16 * 16;  // (planes start 64-byte aligned for float)
    p.used.assign(size_t(p.S), 0);
    for (int64_t i = 0; i < d.kh; ++i)
        for (int64_t j = 0; j < d.kw; ++j) {
            const int64_t ph = (i * d.dh % d.sh) * d.sw + j * d.dw % d.sw;
            p.used[size_t(ph)] = 1;
            p.tap_off.push_back(ph * p.PL + (i * d.dh / d.sh) * p.Wp + j * d.dw / d.sw);
        }
    return p;
}

#if defined(MNN_SPAN_MASKS)
// d[q] = s[2q] for q in [0, n) (a stride-2 phase row), 16 values per step from two loads and an
// even-lane permute; never reads past s[2(n - 1)].
MNN_ISA_AVX512 inline void gather_even(float* d, const float* s, int64_t n) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    int64_t q = 0;
    for (; q + 17 <= n; q += 16)
        _mm512_storeu_ps(d + q, _mm512_permutex2var_ps(_mm512_loadu_ps(s + 2 * q), even,
                                                       _mm512_loadu_ps(s + 2 * q + 16)));
    if (q == n) return;
    const int64_t m = n - q, e = 2 * m - 1;  // values left, elements they span
    const __mmask16 lo = __mmask16(e >= 16 ? 0xFFFFu : (1u << e) - 1u);
    const __mmask16 hi = __mmask16(e > 16 ? (1u << (e - 16)) - 1u : 0u);
    const __m512 v = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(lo, s + 2 * q), even,
                                            _mm512_maskz_loadu_ps(hi, s + 2 * q + 16));
    _mm512_mask_storeu_ps(d + q, __mmask16((1u << m) - 1u), v);
}
#endif

// Phase planes of channels [c0, c1) of one image x ([C, H, W]) into planes (S * PL per channel,
// channel c at planes + c * S * PL; unused phases are left untouched).  L: the lanes of the
// caller's ISA variant (simd_span.h), so short rows are copied and zeroed without library calls.
template <typename T, int L>
MNN_ALWAYS_INLINE void fill_planes(const DirectConv& d, const Planes& p, const T* x, int64_t c0, int64_t c1,
                                   T* planes) {
    for (int64_t c = c0; c < c1; ++c) {
        const T* xc = x + c * d.H * d.W;
        for (int64_t a = 0; a < d.sh; ++a)
            for (int64_t b = 0; b < d.sw; ++b) {
                const int64_t ph = a * d.sw + b;
                if (!p.used[size_t(ph)]) continue;
                T* dst = planes + (c * p.S + ph) * p.PL;
                // Columns q reading inside the input: 0 <= q*sw + b - pl < W.
                const int64_t q0 = std::clamp<int64_t>(ceil_div(d.pl - b, d.sw), 0, p.Wp);
                const int64_t q1 = std::clamp<int64_t>(ceil_div(d.W + d.pl - b, d.sw), q0, p.Wp);
                for (int64_t r = 0; r < p.Hr; ++r) {
                    T* row = dst + r * p.Wp;
                    const int64_t ih = r * d.sh + a - d.pt;
                    if (ih < 0 || ih >= d.H) {
                        simd::zero<T, L>(row, p.Wp);
                        continue;
                    }
                    const T* src = xc + ih * d.W + b - d.pl;  // src[q * sw] for q in [q0, q1)
                    for (int64_t q = 0; q < q0; ++q) row[q] = T(0);
                    if (d.sw == 1) simd::copy<T, L>(row + q0, src + q0, q1 - q0);
                    else if (d.sw == 2) {
#if defined(MNN_SPAN_MASKS)
                        if constexpr (std::is_same_v<T, float> && simd::masked<T, L>()) {
                            gather_even(row + q0, src + 2 * q0, q1 - q0);
                        } else
#endif
                        for (int64_t q = q0; q < q1; ++q) row[q] = src[2 * q];
                    }
                    else for (int64_t q = q0; q < q1; ++q) row[q] = src[q * d.sw];
                    for (int64_t q = q1; q < p.Wp; ++q) row[q] = T(0);
                }
                simd::zero<T, L>(dst + p.Hr * p.Wp, p.PL - p.Hr * p.Wp);
            }
    }
}

}  // namespace convgeom
}  // namespace mnn
