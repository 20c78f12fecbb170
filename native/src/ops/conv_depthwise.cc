// Depthwise convolution (one input channel per group, MobileNet's 3x3 layers).
// AVX-512 float 3x3 layers with stride 1 or 2 and dilation 1 take a direct path
// (dw3_* below).  Otherwise, any stride, dilation and padding: per channel, its
// zero-padded phase planes (conv_planes.h) are built in a thread-local buffer
// (in L2), and every output of the channel is a 1-d correlation of them with the
// tap offsets, computed in the wide layout in vectors of L lanes, four vectors at
// a time (independent accumulators), then written row by row through the epilogue.
#include <algorithm>
#include <cstring>
#include <new>
#include <type_traits>

#include "core/thread_pool.h"
#include "ops/conv_epilogue.h"
#include "ops/conv_planes.h"
#include "ops/conv_regepi.h"
#include "ops/isa_variants.h"

namespace mnn {
namespace convgeom {
namespace {

template <typename T, int L>
struct Lanes {
    typedef T type __attribute__((vector_size(L * sizeof(T))));
};

template <typename V, typename T>
MNN_ALWAYS_INLINE void load_v(V& v, const T* p) {
    std::memcpy(&v, p, sizeof(V));
}

using simd::Scratch;
thread_local Scratch t_planes, t_wide;

// wide[q] = sum over taps t of w[t] * planes[q + off[t]] for q in [0, Qv) (Qv: Q rounded up to L).
template <typename T, int L, int KT>
MNN_ALWAYS_INLINE void dw_wide(const int64_t* off, int64_t taps_rt, const T* __restrict planes, const T* __restrict w,
                               int64_t Q, T* __restrict wide) {
    using V = typename Lanes<T, L>::type;
    const int64_t taps = KT > 0 ? KT : taps_rt;
    int64_t q = 0;
    for (; q + 4 * L <= Q; q += 4 * L) {
        V a0 = V{}, a1 = V{}, a2 = V{}, a3 = V{};
        for (int64_t t = 0; t < taps; ++t) {
            const T* s = planes + off[t] + q;
            const T wt = w[t];
            V x0, x1, x2, x3;
            load_v(x0, s);
            load_v(x1, s + L);
            load_v(x2, s + 2 * L);
            load_v(x3, s + 3 * L);
            a0 += wt * x0;
            a1 += wt * x1;
            a2 += wt * x2;
            a3 += wt * x3;
        }
        std::memcpy(wide + q, &a0, sizeof(V));
        std::memcpy(wide + q + L, &a1, sizeof(V));
        std::memcpy(wide + q + 2 * L, &a2, sizeof(V));
        std::memcpy(wide + q + 3 * L, &a3, sizeof(V));
    }
    for (; q < Q; q += L) {
        V a = V{};
        for (int64_t t = 0; t < taps; ++t) {
            V xv;
            load_v(xv, planes + off[t] + q);
            a += w[t] * xv;
        }
        std::memcpy(wide + q, &a, sizeof(V));
    }
}

struct DwJob {
    const DirectConv* d;
    const Planes* pl;
};

// Channels [c0, c1) of image n: planes, then each of the channel's outputs.
template <typename T, int L>
MNN_ALWAYS_INLINE void dw_channels(const DwJob& jb, const T* x, const T* w, const EpiRt<T>& e, T* y, int64_t n,
                                   int64_t c0, int64_t c1) {
    const DirectConv& d = *jb.d;
    const Planes& pl = *jb.pl;
    const int64_t taps = d.kh * d.kw, Og = d.O / d.G, P = d.OH * d.OW;
    const int64_t Qv = (pl.Q + L - 1) / L * L;
    T* planes = t_planes.get<T>(size_t(pl.S * pl.PL));
    T* wide = t_wide.get<T>(size_t(Qv));
    const int64_t* off = pl.tap_off.data();
    const bool full = epi_has_full(e);
    for (int64_t c = c0; c < c1; ++c) {
        fill_planes<T, L>(d, pl, x + (n * d.C + c) * d.H * d.W, 0, 1, planes);
        for (int64_t og = 0; og < Og; ++og) {
            const int64_t o = c * Og + og;
            const T* wo = w + o * taps;
            if (taps == 9) dw_wide<T, L, 9>(off, taps, planes, wo, pl.Q, wide);
            else dw_wide<T, L, 0>(off, taps, planes, wo, pl.Q, wide);
            T* yo = y + (n * d.O + o) * P;
            if (full) {  // a tensor operand is laid out like y: finish there
                for (int64_t oh = 0; oh < d.OH; ++oh) simd::copy<T, L>(yo + oh * d.OW, wide + oh * pl.Wp, d.OW);
                epilogue_block<T, L>(e, n, o, 1, 0, yo, P, P);
            } else {  // the whole wide plane in whole vectors, then its real columns out
                epilogue_block<T, L>(e, n, o, 1, 0, wide, Qv, Qv);
                for (int64_t oh = 0; oh < d.OH; ++oh) simd::copy<T, L>(yo + oh * d.OW, wide + oh * pl.Wp, d.OW);
            }
        }
    }
}

// ---- channels as vectors, for small planes -------------------------------------------------------------
// L channels at a time: their planes transposed into a zero-padded channels-last buffer (in L1/L2),
// every output position one vector of L channels (a vector load per tap, a vector of L weights),
// the epilogue on the block with channels as vectors (bias and per-channel operands as vectors),
// then transposed back.  For planes of a few dozen positions this replaces per-channel fixed work
// (padding a plane, a pass per op, a copy per row) by per-position vector work.

struct DwVec {
    int64_t Hp, Wp;  // padded input block
};

template <typename T, int L>
MNN_ALWAYS_INLINE void dw_vec_block(const DirectConv& d, const DwVec& g, const T* x, const T* w, const EpiRt<T>& e,
                                    T* y, int64_t n, int64_t c0) {
    using V = typename Lanes<T, L>::type;
    const int64_t P = d.OH * d.OW, taps = d.kh * d.kw, nc = std::min<int64_t>(L, d.C - c0);
    T* buf = t_planes.get<T>(size_t(g.Hp * g.Wp * L + P * L + taps * L + 2 * L));
    T* obuf = buf + g.Hp * g.Wp * L;
    T* wv = obuf + P * L;  // tap t's L channel weights at wv + t * L
    simd::zero<T, L>(buf, g.Hp * g.Wp * L);
    for (int64_t c = 0; c < nc; ++c) {
        const T* xc = x + (n * d.C + c0 + c) * d.H * d.W;
        for (int64_t ih = 0; ih < d.H; ++ih) {
            T* row = buf + ((ih + d.pt) * g.Wp + d.pl) * L + c;
            const T* src = xc + ih * d.W;
            for (int64_t iw = 0; iw < d.W; ++iw) row[iw * L] = src[iw];
        }
    }
    for (int64_t t = 0; t < taps; ++t)
        for (int64_t c = 0; c < L; ++c) wv[t * L + c] = c < nc ? w[(c0 + c) * taps + t] : T(0);
    for (int64_t oh = 0; oh < d.OH; ++oh)
        for (int64_t ow = 0; ow < d.OW; ++ow) {
            V acc = V{};
            const T* base = buf + (oh * d.sh * g.Wp + ow * d.sw) * L;
            for (int64_t i = 0; i < d.kh; ++i)
                for (int64_t j = 0; j < d.kw; ++j) {
                    V xv, wt;
                    load_v(xv, base + (i * d.dh * g.Wp + j * d.dw) * L);
                    load_v(wt, wv + (i * d.kw + j) * L);
                    acc += wt * xv;
                }
            std::memcpy(obuf + (oh * d.OW + ow) * L, &acc, sizeof(V));
        }
    T zeros[L] = {};
    epilogue_block_t<T, L>(e, c0, P, obuf, L, L, zeros);
    for (int64_t c = 0; c < nc; ++c) {
        T* yc = y + (n * d.O + c0 + c) * P;
        const T* src = obuf + c;
        for (int64_t q = 0; q < P; ++q) yc[q] = src[q * L];
    }
}

#define MNN_DWVEC_F32(L) dw_vec_block<float, L>(d, g, x, w, e, y, n, c0)
#define MNN_DWVEC_F64(L) dw_vec_block<double, L>(d, g, x, w, e, y, n, c0)
MNN_ISA_VARIANTS_LANES(dw_vec_f32, (const DirectConv& d, const DwVec& g, const float* x, const float* w,
                                    const EpiRt<float>& e, float* y, int64_t n, int64_t c0), MNN_DWVEC_F32, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(dw_vec_f64, (const DirectConv& d, const DwVec& g, const double* x, const double* w,
                                    const EpiRt<double>& e, double* y, int64_t n, int64_t c0), MNN_DWVEC_F64, 8, 4, 2)
inline auto dw_vec_for(CpuLevel level, float) { return dw_vec_f32_for(level); }
inline auto dw_vec_for(CpuLevel level, double) { return dw_vec_f64_for(level); }

inline int64_t lanes_of(CpuLevel level, size_t elem) {
    const int64_t bytes = level == CpuLevel::Avx512 ? 64 : level == CpuLevel::Avx2 ? 32 : 16;
    return bytes / int64_t(elem);
}

#define MNN_DW_F32(L) dw_channels<float, L>(jb, x, w, e, y, n, c0, c1)
#define MNN_DW_F64(L) dw_channels<double, L>(jb, x, w, e, y, n, c0, c1)
MNN_ISA_VARIANTS_LANES(dw_channels_f32, (const DwJob& jb, const float* x, const float* w, const EpiRt<float>& e,
                                         float* y, int64_t n, int64_t c0, int64_t c1), MNN_DW_F32, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(dw_channels_f64, (const DwJob& jb, const double* x, const double* w, const EpiRt<double>& e,
                                         double* y, int64_t n, int64_t c0, int64_t c1), MNN_DW_F64, 8, 4, 2)
inline auto dw_channels_for(CpuLevel level, float) { return dw_channels_f32_for(level); }
inline auto dw_channels_for(CpuLevel level, double) { return dw_channels_f64_for(level); }

#if defined(MNN_SPAN_MASKS)
// ---- AVX-512 float, 3x3, stride 1 or 2: straight from the input, the epilogue in registers ----------
// Each output vector (16 consecutive columns of one output row) is the sum of its 9 taps, every tap
// one vector read from the input row itself: a masked load for stride 1 (the lanes that fall into
// the padding are masked to zero), two loads and an even / odd permute for stride 2.  Blocks of
// 4 rows x 2 vectors (8 rows x 1 on narrow planes) share their input rows' vectors.  The epilogue
// runs on the finished vector (conv_regepi.h: bias, then each op exactly as conv_epilogue.h
// computes it) and the vector is stored (masked at the row's end) into y: no padded copy of the
// input, no buffer, no second pass.  The path depends on the layer only, never on its epilogue
// (a chain without a register form gets the plain sums, then epilogue_block per channel), so
// fused and unfused plans give the same bits.

// Lanes [lo, hi) of a B-bit mask, clamped to [0, B).
template <int B>
MNN_ALWAYS_INLINE uint32_t lane_range(int64_t lo, int64_t hi) {
    lo = std::max<int64_t>(lo, 0);
    hi = std::min<int64_t>(hi, B);
    if (hi <= lo) return 0u;
    const uint64_t ones = (uint64_t(1) << (hi - lo)) - 1u;
    return uint32_t(ones << lo);
}

// A block of output rows [oh0, oh0 + R) x CH chunks of 16 columns from ow0 (rows past OH and
// lanes past OW are computed from zeros and not stored): R * CH independent accumulators, each
// input row's vectors loaded once for the rows that use it.
template <typename Prog, int S, int R, int CH>
MNN_ISA_AVX512 MNN_ALWAYS_INLINE void dw3_block(const DirectConv& d, const float* xc, const __m512* wv,
                                                const __m512* ec, const float* const* ef, const float* zrow,
                                                float* yc, int64_t oh0, int64_t ow0) {
    constexpr int K = 3, NI = (R - 1) * S + K;
    const int64_t H = d.H, W = d.W, OH = d.OH, OW = d.OW;
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    // Column masks per chunk: stride 1, load j of chunk c reads columns lb + j + l; stride 2, the
    // 32-lane loads at lb and lb + 2 (halves m0 / m1, m2 / m3) read columns lb (+ 2) + l.
    __mmask16 lm[CH][4];
    int64_t lb[CH];
    for (int c = 0; c < CH; ++c) {
        const int64_t o = ow0 + 16 * c;
        if (S == 1) {
            lb[c] = o - d.pl;
            for (int j = 0; j < K; ++j) lm[c][j] = __mmask16(lane_range<16>(-lb[c] - j, W - lb[c] - j));
        } else {
            lb[c] = 2 * o - d.pl;
            const uint32_t m0 = lane_range<32>(-lb[c], W - lb[c]), m2 = lane_range<32>(-lb[c] - 2, W - lb[c] - 2);
            lm[c][0] = __mmask16(m0);
            lm[c][1] = __mmask16(m0 >> 16);
            lm[c][2] = __mmask16(m2);
            lm[c][3] = __mmask16(m2 >> 16);
        }
    }
    // Rows in the padding are read from a row of zeros (the column masks stay as they are).
    const float* rp[NI];
    for (int ii = 0; ii < NI; ++ii) {
        const int64_t ih = oh0 * S - d.pt + ii;
        rp[ii] = ih >= 0 && ih < H ? xc + ih * W : zrow;
    }
    __m512 acc[R][CH];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < CH; ++c) acc[r][c] = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int ii = 0; ii < NI; ++ii) {
#pragma GCC unroll 2
        for (int c = 0; c < CH; ++c) {
            __m512 v[K];
            const float* b0 = rp[ii] + lb[c];
            if (S == 1) {
                for (int j = 0; j < K; ++j) v[j] = _mm512_maskz_loadu_ps(lm[c][j], b0 + j);
            } else {
                const __m512 a0 = _mm512_maskz_loadu_ps(lm[c][0], b0);
                const __m512 a1 = _mm512_maskz_loadu_ps(lm[c][1], b0 + 16);
                const __m512 c0 = _mm512_maskz_loadu_ps(lm[c][2], b0 + 2);
                const __m512 c1 = _mm512_maskz_loadu_ps(lm[c][3], b0 + 18);
                v[0] = _mm512_permutex2var_ps(a0, even, a1);
                v[1] = _mm512_permutex2var_ps(a0, odd, a1);
                v[2] = _mm512_permutex2var_ps(c0, even, c1);
            }
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const int i = ii - r * S;
                if (i < 0 || i >= K) continue;
                for (int j = 0; j < K; ++j) acc[r][c] = _mm512_fmadd_ps(wv[i * K + j], v[j], acc[r][c]);
            }
        }
    }
    for (int r = 0; r < R; ++r) {
        if (oh0 + r >= OH) break;
        for (int c = 0; c < CH; ++c) {
            const int64_t o = ow0 + 16 * c;
            if (o >= OW) break;
            const __mmask16 sm = __mmask16(lane_range<16>(0, OW - o));
            const int64_t off = (oh0 + r) * OW + o;
            const __m512 out = Prog::apply(acc[r][c], ec, ef, off, sm);
            if (sm == __mmask16(0xFFFF)) _mm512_storeu_ps(yc + off, out);
            else _mm512_mask_storeu_ps(yc + off, sm, out);
        }
    }
}

// One channel: xc [H, W] -> yc [OH, OW], 3x3 taps wc, stride S (1 or 2), dilation 1; zrow: W zeros.
// Narrow planes (one chunk per row) take eight rows at a time, wider ones four rows by two chunks.
template <typename Prog, int S>
MNN_ISA_AVX512 MNN_ALWAYS_INLINE void dw3_plane(const DirectConv& d, const float* xc, const float* wc,
                                                const __m512* ec, const float* const* ef, const float* zrow,
                                                float* yc) {
    __m512 wv[9];
    for (int t = 0; t < 9; ++t) wv[t] = _mm512_set1_ps(wc[t]);
    const int64_t OH = d.OH, OW = d.OW;
    if (OW <= 16) {
        for (int64_t oh0 = 0; oh0 < OH; oh0 += 8) dw3_block<Prog, S, 8, 1>(d, xc, wv, ec, ef, zrow, yc, oh0, 0);
        return;
    }
    const int64_t pairs = OW / 32 * 32;
    for (int64_t oh0 = 0; oh0 < OH; oh0 += 4) {
        for (int64_t ow0 = 0; ow0 < pairs; ow0 += 32)
            dw3_block<Prog, S, 4, 2>(d, xc, wv, ec, ef, zrow, yc, oh0, ow0);
        if (pairs < OW) dw3_block<Prog, S, 4, 2>(d, xc, wv, ec, ef, zrow, yc, oh0, pairs);
    }
}

struct Dw3Job {
    const DirectConv* d;
    const EpiRt<float>* e;
    RegPlan plan;  // the epilogue in registers, or RegChain::Other: a pass per channel after the kernel
};

// Channels t in [t0, t1) (t = n * C + c) with the epilogue program Prog.
template <typename Prog>
struct Dw3Channels {
    MNN_ISA_AVX512 static void run(const Dw3Job& jb, const float* x, const float* w, float* y, int64_t t0,
                                   int64_t t1) {
        const DirectConv& d = *jb.d;
        const int64_t P = d.OH * d.OW;
        float* zrow = t_wide.get<float>(size_t(d.W));
        std::memset(zrow, 0, size_t(d.W) * sizeof(float));
        const bool after = jb.plan.chain == RegChain::Other;
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t n = t / d.C, c = t % d.C;
            __m512 ec[Prog::n > 0 ? Prog::n : 1];
            const float* ef[Prog::n > 0 ? Prog::n : 1];
            reg_epi_consts(*jb.e, jb.plan, Prog::n, n, c, 0, ec, ef);
            const float* xc = x + t * d.H * d.W;
            float* yc = y + (n * d.O + c) * P;
            if (d.sh == 1) dw3_plane<Prog, 1>(d, xc, w + c * 9, ec, ef, zrow, yc);
            else dw3_plane<Prog, 2>(d, xc, w + c * 9, ec, ef, zrow, yc);
            if (after) epilogue_block<float, 16>(*jb.e, n, c, 1, 0, yc, P, P);
        }
    }
};

// The direct path serves this layer (float, AVX-512 active, checked by the caller).
inline bool dw3_suits(const DirectConv& d) {
    return d.O == d.C && d.kh == 3 && d.kw == 3 && d.dh == 1 && d.dw == 1 && d.sh == d.sw &&
           (d.sh == 1 || d.sh == 2);
}

// (The path does not depend on the epilogue, so fused and unfused steps sum alike.)
bool dw3_run(const DirectConv& d, const float* x, const float* w, const EpiRt<float>& e, float* y) {
    if (!dw3_suits(d)) return false;
    const Dw3Job jb{&d, &e, reg_epi_select(e)};
    const auto run = reg_epi_pick<Dw3Channels>(jb.plan.chain);
    const int64_t per_channel = d.OH * d.OW * 9 + d.H * d.W;
    const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, per_channel));
    parallel_for(d.N * d.C, grain, [&](int64_t a, int64_t b) { run(jb, x, w, y, a, b); });
    return true;
}
#endif

}  // namespace

template <typename T>
void conv2d_depthwise(const DirectConv& d, const T* x, const T* w, const EpiRt<T>& epi, T* y) {
#if defined(MNN_SPAN_MASKS)
    if constexpr (std::is_same_v<T, float>)
        if (active_level() == CpuLevel::Avx512 && dw3_run(d, x, w, epi, y)) return;
#endif
    // Small planes, one output per input channel, no tensor operand: channels as vectors.
    if (d.OH * d.OW <= 64 && d.O == d.C && !epi_has_full(epi)) {
        const CpuLevel level = active_level();
        const int64_t L = lanes_of(level, sizeof(T)), blocks = (d.C + L - 1) / L;
        DwVec g;
        g.Hp = std::max(d.H + d.pt, (d.OH - 1) * d.sh + (d.kh - 1) * d.dh + 1);
        g.Wp = std::max(d.W + d.pl, (d.OW - 1) * d.sw + (d.kw - 1) * d.dw + 1);
        const auto run = dw_vec_for(level, T());
        const int64_t per_block = L * (d.OH * d.OW * d.kh * d.kw + 2 * d.H * d.W);
        parallel_for(d.N * blocks, std::max<int64_t>(1, (int64_t(1) << 15) / per_block), [&](int64_t a, int64_t b) {
            for (int64_t t = a; t < b; ++t) run(d, g, x, w, epi, y, t / blocks, (t % blocks) * L);
        });
        return;
    }
    // Slack for the vector over-reads past the last wide position (the widest variant's 4 vectors).
    constexpr int64_t kMaxLanes = 64 / sizeof(T);
    const Planes pl = make_planes(d, 4 * kMaxLanes + d.OW + (d.kw - 1) * d.dw, false);
    const DwJob jb{&d, &pl};
    const auto run = dw_channels_for(active_level(), T());
    const int64_t per_channel = (d.O / d.G) * d.OH * d.OW * d.kh * d.kw + pl.S * pl.PL;
    const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, per_channel));
    parallel_for(d.N * d.C, grain, [&](int64_t a, int64_t b) {
        for (int64_t t = a; t < b;) {
            const int64_t n = t / d.C, c0 = t % d.C, c1 = std::min(d.C, c0 + (b - t));
            run(jb, x, w, epi, y, n, c0, c1);
            t += c1 - c0;
        }
    });
}

template void conv2d_depthwise<float>(const DirectConv&, const float*, const float*, const EpiRt<float>&, float*);
template void conv2d_depthwise<double>(const DirectConv&, const double*, const double*, const EpiRt<double>&,
                                       double*);

}  // namespace convgeom
}  // namespace mnn
