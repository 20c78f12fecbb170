// Depthwise convolution (one input channel per group, MobileNet's 3x3 layers),
// any stride, dilation and padding: per channel, its zero-padded phase planes
// (conv_planes.h) are built in a thread-local buffer (in L2), and every output
// of the channel is a 1-d correlation of them with the tap offsets, computed
// in the wide layout in vectors of L lanes, four vectors at a time (independent
// accumulators), then written row by row through the epilogue.
#include <algorithm>
#include <cstring>
#include <new>

#include "core/thread_pool.h"
#include "ops/conv_epilogue.h"
#include "ops/conv_planes.h"
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

}  // namespace

template <typename T>
void conv2d_depthwise(const DirectConv& d, const T* x, const T* w, const EpiRt<T>& epi, T* y) {
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
