// Direct convolution kernels for small layers (conv2d forward and its filter
// gradient, stride 1): for the first layers of a network (few input channels,
// short rows), unfolding the input for a GEMM costs more than the arithmetic.
//
// The input is copied once into zero-padded planes of Wp = OW + (kw-1)*dw
// columns.  In such a plane every output position (oh, ow) and tap (i, j)
// read element oh*Wp + ow + (i*dh*Wp + j*dw): with the output also laid out
// Wp wide, a convolution is a 1-d correlation of the flattened plane with a
// table of tap offsets.  The kernels run over the flattened positions in
// vectors of L lanes (the Wp - OW extra columns per row are computed and
// dropped, or, in the filter gradient, meet zeros), with fixed-size blocks of
// accumulators the compiler keeps in registers.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/thread_pool.h"
#include "ops/conv_common.h"
#include "ops/conv_epilogue.h"
#include "ops/isa_variants.h"

namespace mnn {

namespace {


using convgeom::DirectConv;

// L lanes of T as one GCC/Clang vector value: the compiler maps it onto the
// clone's registers (one zmm, two ymm or four xmm), which pins the lanes as
// the vectorised dimension.
template <typename T, int L>
struct Lanes {
    typedef T type __attribute__((vector_size(L * sizeof(T))));
};

template <typename V, typename T>
MNN_ALWAYS_INLINE void load_lanes(V& v, const T* p) {  // (by reference: no vector-ABI return)
    std::memcpy(&v, p, sizeof(V));
}

// Flattened geometry: planes of PL elements (rows Wp wide, slack for the last
// vector's taps), Q output positions rounded up to whole vectors.
struct Flat {
    int64_t Wp, Q, PL;
    std::vector<int64_t> off;  // per tap t = i*kw + j: i*dh*Wp + j*dw
};

Flat flat_geometry(const DirectConv& d, int64_t L) {
    Flat f;
    f.Wp = d.OW + (d.kw - 1) * d.dw;
    f.Q = (d.OH * f.Wp + L - 1) / L * L;
    for (int64_t i = 0; i < d.kh; ++i)
        for (int64_t j = 0; j < d.kw; ++j) f.off.push_back(i * d.dh * f.Wp + j * d.dw);
    f.PL = f.Q + f.off.back();
    return f;
}

// xp[(n*C + c) * PL + r*Wp + q] = x[n, c, r - pt, q - pl] (0 outside and in the slack).
template <typename T>
void pad_planes(const DirectConv& d, const Flat& f, const T* x, T* xp) {
    parallel_for(d.N * d.C, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, f.PL)), [&](int64_t a, int64_t b) {
        for (int64_t pl = a; pl < b; ++pl) {
            T* dst = xp + pl * f.PL;
            const T* src = x + pl * d.H * d.W;
            std::fill(dst, dst + f.PL, T(0));
            const int64_t q0 = std::max<int64_t>(0, d.pl), q1 = std::min(f.Wp, d.pl + d.W);
            for (int64_t r = 0; r * f.Wp < f.PL; ++r) {
                const int64_t ih = r - d.pt;
                if (ih < 0 || ih >= d.H) continue;
                T* drow = dst + r * f.Wp;
                const T* srow = src + ih * d.W - d.pl;
                const int64_t end = std::min(q1, f.PL - r * f.Wp);
                for (int64_t q = q0; q < end; ++q) drow[q] = srow[q];
            }
        }
    });
}

// ---- forward ------------------------------------------------------------------------

// acc[b] = sum over channels c and taps t of w[b*taps + c*KT + t] * xp[c*PL + q0 + off[t] + lane].
template <typename T, int OB, int L>
MNN_ALWAYS_INLINE void fwd_block(const Flat& f, int64_t Cg, int64_t KT, const T* __restrict xp,
                                 const T* __restrict w, int64_t q0, T (&out)[OB][L]) {
    using V = typename Lanes<T, L>::type;
    const int64_t taps = Cg * KT;
    const int64_t* off = f.off.data();
    V acc[OB];
    for (int b = 0; b < OB; ++b) acc[b] = V{};
    for (int64_t c = 0; c < Cg; ++c) {
        const T* base = xp + c * f.PL + q0;
        const T* wc = w + c * KT;
        for (int64_t t = 0; t < KT; ++t) {
            V xv;
            load_lanes(xv, base + off[t]);
            for (int b = 0; b < OB; ++b) acc[b] += wc[b * taps + t] * xv;
        }
    }
    std::memcpy(out, acc, sizeof(acc));
}

// Channels [0, OB) at flattened positions [q0, q0 + L), into rows of yw (Q apart).
template <typename T, int OB, int L>
MNN_ALWAYS_INLINE void fwd_channels(const Flat& f, int64_t Cg, int64_t KT, const T* xp, const T* w, int64_t q0,
                                    T* yw) {
    T acc[OB][L];
    fwd_block<T, OB, L>(f, Cg, KT, xp, w, q0, acc);
    for (int b = 0; b < OB; ++b) std::memcpy(yw + b * f.Q + q0, acc[b], sizeof(acc[b]));
}

// One image and group, every output channel (blocks of 8, 4, 2, 1) at every
// position, into the wide layout yw[Og][Q].
template <typename T, int L>
MNN_ALWAYS_INLINE void fwd_image(const DirectConv& d, const Flat& f, int64_t Cg, int64_t Og, const T* xp, const T* w,
                                 T* yw) {
    const int64_t KT = d.kh * d.kw, taps = Cg * KT;
    for (int64_t q0 = 0; q0 < f.Q; q0 += L) {
        int64_t o = 0;
        for (; o + 8 <= Og; o += 8) fwd_channels<T, 8, L>(f, Cg, KT, xp, w + o * taps, q0, yw + o * f.Q);
        if (o + 4 <= Og) { fwd_channels<T, 4, L>(f, Cg, KT, xp, w + o * taps, q0, yw + o * f.Q); o += 4; }
        if (o + 2 <= Og) { fwd_channels<T, 2, L>(f, Cg, KT, xp, w + o * taps, q0, yw + o * f.Q); o += 2; }
        if (o < Og) fwd_channels<T, 1, L>(f, Cg, KT, xp, w + o * taps, q0, yw + o * f.Q);
    }
}

// Positions are rounded up to the widest variant's vector (64 bytes); narrower ones divide it.
constexpr int64_t kLanesF32 = 16, kLanesF64 = 8;

#define MNN_FWD_F32(L) fwd_image<float, L>(d, f, Cg, Og, xp, w, yw)
#define MNN_FWD_F64(L) fwd_image<double, L>(d, f, Cg, Og, xp, w, yw)
MNN_ISA_VARIANTS_LANES(fwd_image_f32, (const DirectConv& d, const Flat& f, int64_t Cg, int64_t Og, const float* xp,
                                       const float* w, float* yw), MNN_FWD_F32, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(fwd_image_f64, (const DirectConv& d, const Flat& f, int64_t Cg, int64_t Og, const double* xp,
                                       const double* w, double* yw), MNN_FWD_F64, 8, 4, 2)
inline auto fwd_image_for(CpuLevel level, float) { return fwd_image_f32_for(level); }
inline auto fwd_image_for(CpuLevel level, double) { return fwd_image_f64_for(level); }

template <typename T> constexpr int64_t lanes() { return std::is_same_v<T, float> ? kLanesF32 : kLanesF64; }

// ---- filter gradient ------------------------------------------------------------------

// Images [0, M) (xp, dyp advance by xs, ds per image):
// out[b*stride + tt] += sum over images and positions q of dyp[b*Q + q] * xp[q + off[t0 + tt]]
// for one input channel; the accumulators stay in registers across the images and
// are reduced once (short planes would otherwise spend more on the reductions).
template <typename T, int OB, int TB, int L>
MNN_ALWAYS_INLINE void filter_block(const Flat& f, const T* __restrict xp, int64_t xs, const T* __restrict dyp,
                                    int64_t ds, int64_t M, int64_t t0, T* __restrict out, int64_t stride) {
    using V = typename Lanes<T, L>::type;
    int64_t off[TB];
    for (int tt = 0; tt < TB; ++tt) off[tt] = f.off[size_t(t0 + tt)];
    V acc[OB][TB];
    for (int b = 0; b < OB; ++b)
        for (int tt = 0; tt < TB; ++tt) acc[b][tt] = V{};
    for (int64_t m = 0; m < M; ++m) {
        const T* x = xp + m * xs;
        const T* g0 = dyp + m * ds;
        for (int64_t q = 0; q < f.Q; q += L) {
            V g[OB];
            for (int b = 0; b < OB; ++b) load_lanes(g[b], g0 + b * f.Q + q);
            for (int tt = 0; tt < TB; ++tt) {
                V xv;
                load_lanes(xv, x + q + off[tt]);
                for (int b = 0; b < OB; ++b) acc[b][tt] += g[b] * xv;
            }
        }
    }
    for (int b = 0; b < OB; ++b)
        for (int tt = 0; tt < TB; ++tt) {
            T lanes_[L];
            std::memcpy(lanes_, &acc[b][tt], sizeof(lanes_));
            T s = T(0);
            for (int l = 0; l < L; ++l) s += lanes_[l];
            out[b * stride + tt] += s;
        }
}

// Channels [0, NB) (dyp planes Q apart) of one input channel: every tap, TB at a time.
// (A template, not a lambda: a lambda is a function of its own, which the
// target clones would not cover.)
template <typename T, int NB, int L>
MNN_ALWAYS_INLINE void filter_channels(const Flat& f, int64_t KT, int64_t taps, const T* x, int64_t xs, const T* dyp,
                                       int64_t ds, int64_t M, T* out) {
    constexpr int TB = 4;
    int64_t t = 0;
    for (; t + TB <= KT; t += TB) filter_block<T, NB, TB, L>(f, x, xs, dyp, ds, M, t, out + t, taps);
    for (; t < KT; ++t) filter_block<T, NB, 1, L>(f, x, xs, dyp, ds, M, t, out + t, taps);
}

// M images of one group: dw[o, c, t] += ..., dw laid out [Og][Cg * KT]; xp: the group's first
// input plane, images xs apart; dyp: Og planes of Q, images ds apart.
template <typename T, int L>
MNN_ALWAYS_INLINE void filter_images(const DirectConv& d, const Flat& f, int64_t Cg, int64_t Og, const T* xp,
                                     int64_t xs, const T* dyp, int64_t ds, int64_t M, T* dw) {
    const int64_t KT = d.kh * d.kw, taps = Cg * KT;
    for (int64_t c = 0; c < Cg; ++c) {
        const T* x = xp + c * f.PL;
        int64_t o = 0;
        if constexpr (L * sizeof(T) == 64)  // 32 vector registers: 4 channels x 4 taps of accumulators
            for (; o + 4 <= Og; o += 4)
                filter_channels<T, 4, L>(f, KT, taps, x, xs, dyp + o * f.Q, ds, M, dw + o * taps + c * KT);
        for (; o + 2 <= Og; o += 2)  // 16 registers: 2 x 4
            filter_channels<T, 2, L>(f, KT, taps, x, xs, dyp + o * f.Q, ds, M, dw + o * taps + c * KT);
        if (o < Og) filter_channels<T, 1, L>(f, KT, taps, x, xs, dyp + o * f.Q, ds, M, dw + o * taps + c * KT);
    }
}

#define MNN_FILTER_F32(L) filter_images<float, L>(d, f, Cg, Og, xp, xs, dyp, ds, M, dw)
#define MNN_FILTER_F64(L) filter_images<double, L>(d, f, Cg, Og, xp, xs, dyp, ds, M, dw)
MNN_ISA_VARIANTS_LANES(filter_images_f32, (const DirectConv& d, const Flat& f, int64_t Cg, int64_t Og,
                                           const float* xp, int64_t xs, const float* dyp, int64_t ds, int64_t M,
                                           float* dw), MNN_FILTER_F32, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(filter_images_f64, (const DirectConv& d, const Flat& f, int64_t Cg, int64_t Og,
                                           const double* xp, int64_t xs, const double* dyp, int64_t ds, int64_t M,
                                           double* dw), MNN_FILTER_F64, 8, 4, 2)
inline auto filter_images_for(CpuLevel level, float) { return filter_images_f32_for(level); }
inline auto filter_images_for(CpuLevel level, double) { return filter_images_f64_for(level); }

}  // namespace

namespace convgeom {

bool direct_conv_suits(const DirectConv& d) {
    const int64_t Cg = d.C / d.G;
    return d.sh == 1 && d.sw == 1 && Cg * d.kh * d.kw <= kDirectMaxTaps && d.OW > 0 && d.OH > 0;
}

template <typename T>
void conv2d_direct(const DirectConv& d, const T* x, const T* w, const EpiRt<T>& epi, T* y) {
    constexpr int64_t L = lanes<T>();
    const Flat f = flat_geometry(d, L);
    const int64_t Cg = d.C / d.G, Og = d.O / d.G, P = d.OH * d.OW, taps = Cg * d.kh * d.kw;
    std::vector<T> xp(size_t(d.N * d.C * f.PL));
    pad_planes(d, f, x, xp.data());
    // Tasks: (image, group), each computing the wide layout, then keeping the real columns (epilogue).
    const auto image = fwd_image_for(active_level(), T());
    parallel_for(d.N * d.G, 1, [&](int64_t a, int64_t b) {
        std::vector<T> yw(size_t(Og * f.Q));
        for (int64_t t = a; t < b; ++t) {
            const int64_t n = t / d.G, grp = t % d.G;
            image(d, f, Cg, Og, xp.data() + (n * d.C + grp * Cg) * f.PL, w + grp * Og * taps, yw.data());
            T* yg = y + (n * d.O + grp * Og) * P;
            for (int64_t o = 0; o < Og; ++o)
                for (int64_t oh = 0; oh < d.OH; ++oh)
                    std::memcpy(yg + o * P + oh * d.OW, yw.data() + o * f.Q + oh * f.Wp, size_t(d.OW) * sizeof(T));
            epilogue_block<T, 4>(epi, n, grp * Og, Og, 0, yg, P, P);
        }
    });
}

template <typename T>
void conv2d_filter_direct(const DirectConv& d, const T* x, const T* dy, T* dw) {
    constexpr int64_t L = lanes<T>();
    const Flat f = flat_geometry(d, L);
    const int64_t Cg = d.C / d.G, Og = d.O / d.G, out_size = d.O * Cg * d.kh * d.kw;
    std::vector<T> xp(size_t(d.N * d.C * f.PL));
    pad_planes(d, f, x, xp.data());
    // dy laid out like the flattened output: rows Wp wide, zeros in the extra columns and the tail
    std::vector<T> dyp(size_t(d.N * d.O * f.Q), T(0));
    parallel_for(d.N * d.O, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, f.Q)), [&](int64_t a, int64_t b) {
        for (int64_t pl = a; pl < b; ++pl)
            for (int64_t oh = 0; oh < d.OH; ++oh)
                for (int64_t ow = 0; ow < d.OW; ++ow)
                    dyp[size_t(pl * f.Q + oh * f.Wp + ow)] = dy[(pl * d.OH + oh) * d.OW + ow];
    });
    // The images split over the threads (per group), each thread summing into its own copy of dW.
    const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(get_thread_number(), d.N));
    std::vector<T> partial(size_t(threads * out_size), T(0));
    const auto images = filter_images_for(active_level(), T());
    parallel_for(threads, 1, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) {
            const int64_t n0 = d.N * k / threads, n1 = d.N * (k + 1) / threads;
            for (int64_t grp = 0; grp < d.G && n1 > n0; ++grp)
                images(d, f, Cg, Og, xp.data() + (n0 * d.C + grp * Cg) * f.PL, d.C * f.PL,
                                  dyp.data() + (n0 * d.O + grp * Og) * f.Q, d.O * f.Q, n1 - n0,
                                  partial.data() + k * out_size + grp * Og * Cg * d.kh * d.kw);
        }
    });
    std::fill(dw, dw + out_size, T(0));
    for (int64_t k = 0; k < threads; ++k)
        for (int64_t q = 0; q < out_size; ++q) dw[q] += partial[size_t(k * out_size + q)];
}

template void conv2d_direct<float>(const DirectConv&, const float*, const float*, const EpiRt<float>&, float*);
template void conv2d_direct<double>(const DirectConv&, const double*, const double*, const EpiRt<double>&, double*);
template void conv2d_filter_direct<float>(const DirectConv&, const float*, const float*, float*);
template void conv2d_filter_direct<double>(const DirectConv&, const double*, const double*, double*);

}  // namespace convgeom
}  // namespace mnn
