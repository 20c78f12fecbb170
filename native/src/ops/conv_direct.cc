// Direct convolution kernels for small layers (conv2d forward and its filter
// gradient, width stride 1): for the first layers of a network (few input
// channels, short rows), unfolding the input for a GEMM costs more than the
// arithmetic.  The input is copied once into zero-padded planes whose rows are
// long enough for every window and rounded up to whole vectors, so the inner
// loops have no bounds checks: fixed-size blocks of accumulators (output
// channels x L lanes of a row) that the compiler keeps in registers.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "ops/conv_common.h"

namespace mnn {

namespace {

#if defined(MNN_GEMM_X86) && defined(__linux__) && \
    ((defined(__clang__) && __clang_major__ >= 14) || (!defined(__clang__) && defined(__GNUC__)))
#define MNN_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MNN_MULTIVERSION
#endif
#if defined(__GNUC__)
#define MNN_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MNN_ALWAYS_INLINE inline
#endif

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

// Padded planes: xp[(n * C + c) * Hp * Wp + r * Wp + q] = x[n, c, r - pt, q - pl] (0 outside).
struct Padded {
    int64_t Hp, Wp, OWp;  // rows, row length, output columns rounded up to whole vectors
};

Padded padded_geometry(const DirectConv& d, int64_t L) {
    Padded p;
    p.OWp = (d.OW + L - 1) / L * L;
    p.Hp = std::max<int64_t>(1, (d.OH - 1) * d.sh + (d.kh - 1) * d.dh + 1);
    p.Wp = p.OWp + (d.kw - 1) * d.dw;
    return p;
}

template <typename T>
void pad_planes(const DirectConv& d, const Padded& p, const T* x, T* xp) {
    const int64_t planes = d.N * d.C;
    parallel_for(planes, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, p.Hp * p.Wp)), [&](int64_t a, int64_t b) {
        for (int64_t pl = a; pl < b; ++pl) {
            T* dst = xp + pl * p.Hp * p.Wp;
            const T* src = x + pl * d.H * d.W;
            std::fill(dst, dst + p.Hp * p.Wp, T(0));
            for (int64_t r = 0; r < p.Hp; ++r) {
                const int64_t ih = r - d.pt;
                if (ih < 0 || ih >= d.H) continue;
                const int64_t q0 = std::max<int64_t>(0, d.pl), q1 = std::min(p.Wp, d.pl + d.W);
                for (int64_t q = q0; q < q1; ++q) dst[r * p.Wp + q] = src[ih * d.W + q - d.pl];
            }
        }
    });
}

// ---- forward: y[o, oh, q0 + l] for OB channels and L lanes ------------------------

template <typename T, int OB, int L>
MNN_ALWAYS_INLINE void fwd_block(const DirectConv& d, const Padded& p, int64_t Cg, const T* __restrict xp,
                                 const T* __restrict w, int64_t oh, int64_t q0, T (&out)[OB][L]) {
    using V = typename Lanes<T, L>::type;
    const int64_t taps = Cg * d.kh * d.kw;
    V acc[OB];
    for (int b = 0; b < OB; ++b) acc[b] = V{};
    for (int64_t c = 0; c < Cg; ++c)
        for (int64_t i = 0; i < d.kh; ++i) {
            const T* row = xp + (c * p.Hp + oh * d.sh + i * d.dh) * p.Wp + q0;
            const T* wt = w + (c * d.kh + i) * d.kw;
            for (int64_t j = 0; j < d.kw; ++j) {
                V xv;
                load_lanes(xv, row + j * d.dw);
                for (int b = 0; b < OB; ++b) acc[b] += wt[b * taps + j] * xv;
            }
        }
    std::memcpy(out, acc, sizeof(acc));
}

// OB channels [o, o + OB) of row oh, every column block, bias added.
template <typename T, int OB, int L>
MNN_ALWAYS_INLINE void fwd_channels(const DirectConv& d, const Padded& p, int64_t Cg, const T* xp, const T* w,
                                    const T* bias, int64_t oh, T* y, int64_t P) {
    for (int64_t q0 = 0; q0 < d.OW; q0 += L) {
        T acc[OB][L];
        fwd_block<T, OB, L>(d, p, Cg, xp, w, oh, q0, acc);
        const int64_t n = std::min<int64_t>(L, d.OW - q0);
        for (int b = 0; b < OB; ++b) {
            T* yr = y + b * P + oh * d.OW + q0;
            const T bv = bias ? bias[b] : T(0);
            for (int64_t l = 0; l < n; ++l) yr[l] = acc[b][l] + bv;
        }
    }
}

template <typename T, int L>
MNN_ALWAYS_INLINE void fwd_row(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og, const T* xp, const T* w,
                               const T* bias, int64_t oh, T* y, int64_t P) {
    const int64_t taps = Cg * d.kh * d.kw;
    int64_t o = 0;
    auto at = [&](int64_t k) { return bias ? bias + k : nullptr; };
    for (; o + 8 <= Og; o += 8) fwd_channels<T, 8, L>(d, p, Cg, xp, w + o * taps, at(o), oh, y + o * P, P);
    if (o + 4 <= Og) { fwd_channels<T, 4, L>(d, p, Cg, xp, w + o * taps, at(o), oh, y + o * P, P); o += 4; }
    if (o + 2 <= Og) { fwd_channels<T, 2, L>(d, p, Cg, xp, w + o * taps, at(o), oh, y + o * P, P); o += 2; }
    if (o < Og) fwd_channels<T, 1, L>(d, p, Cg, xp, w + o * taps, at(o), oh, y + o * P, P);
}

template <typename T>
MNN_ALWAYS_INLINE void fwd_row_any(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og, const T* xp,
                                   const T* w, const T* bias, int64_t oh, T* y, int64_t P) {
    constexpr int L = 64 / sizeof(T);  // one 64-byte vector (two or four narrower ones)
    if (p.OWp % L == 0) fwd_row<T, L>(d, p, Cg, Og, xp, w, bias, oh, y, P);
    else fwd_row<T, L / 2>(d, p, Cg, Og, xp, w, bias, oh, y, P);
}

MNN_MULTIVERSION void fwd_row_f32(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og, const float* xp,
                                  const float* w, const float* bias, int64_t oh, float* y, int64_t P) {
    fwd_row_any(d, p, Cg, Og, xp, w, bias, oh, y, P);
}
MNN_MULTIVERSION void fwd_row_f64(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og, const double* xp,
                                  const double* w, const double* bias, int64_t oh, double* y, int64_t P) {
    fwd_row_any(d, p, Cg, Og, xp, w, bias, oh, y, P);
}
inline void fwd_row_dispatch(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og, const float* xp,
                             const float* w, const float* bias, int64_t oh, float* y, int64_t P) {
    fwd_row_f32(d, p, Cg, Og, xp, w, bias, oh, y, P);
}
inline void fwd_row_dispatch(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og, const double* xp,
                             const double* w, const double* bias, int64_t oh, double* y, int64_t P) {
    fwd_row_f64(d, p, Cg, Og, xp, w, bias, oh, y, P);
}

// Lanes per block: whole 64-byte vectors when the row is long, half of one when short.
template <typename T>
int64_t lanes_for(const DirectConv& d) {
    constexpr int64_t L = 64 / sizeof(T);
    return d.OW > L / 2 ? L : L / 2;
}

// ---- filter gradient: dW[o, c, i, j] for OB channels x JB kernel columns ------------

template <typename T, int OB, int JB, int L>
MNN_ALWAYS_INLINE void filter_block(const DirectConv& d, const Padded& p, const T* __restrict xp,
                                    const T* __restrict dyp, int64_t i, int64_t j0, T* __restrict out,
                                    int64_t out_stride) {
    // xp: one padded input plane; dyp: OB output-gradient planes of OH x OWp
    using V = typename Lanes<T, L>::type;
    V acc[OB][JB];
    for (int b = 0; b < OB; ++b)
        for (int jj = 0; jj < JB; ++jj) acc[b][jj] = V{};
    for (int64_t oh = 0; oh < d.OH; ++oh) {
        const T* row = xp + (oh * d.sh + i * d.dh) * p.Wp + j0 * d.dw;
        for (int64_t q0 = 0; q0 < p.OWp; q0 += L) {
            V g[OB];
            for (int b = 0; b < OB; ++b) load_lanes(g[b], dyp + (b * d.OH + oh) * p.OWp + q0);
            for (int jj = 0; jj < JB; ++jj) {
                V xv;
                load_lanes(xv, row + jj * d.dw + q0);
                for (int b = 0; b < OB; ++b) acc[b][jj] += g[b] * xv;
            }
        }
    }
    for (int b = 0; b < OB; ++b)
        for (int jj = 0; jj < JB; ++jj) {
            T lanes[L];
            std::memcpy(lanes, &acc[b][jj], sizeof(lanes));
            T s = T(0);
            for (int l = 0; l < L; ++l) s += lanes[l];
            out[b * out_stride + jj] += s;
        }
}

// One image and group: dw[o, c, i, j] += ..., dw laid out [Og][Cg * kh * kw].
template <typename T, int L>
MNN_ALWAYS_INLINE void filter_image(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og, const T* xp,
                                    const T* dyp, T* dw) {
    constexpr int OB = 4, JB = 4;
    const int64_t taps = Cg * d.kh * d.kw, plane = p.Hp * p.Wp, gplane = d.OH * p.OWp;
    for (int64_t c = 0; c < Cg; ++c)
        for (int64_t i = 0; i < d.kh; ++i) {
            const T* x = xp + c * plane;
            int64_t o = 0;
            auto cols = [&](auto ob_tag, int64_t o0) {
                constexpr int NB = decltype(ob_tag)::value;
                T* out = dw + o0 * taps + (c * d.kh + i) * d.kw;
                int64_t j = 0;
                for (; j + JB <= d.kw; j += JB)
                    filter_block<T, NB, JB, L>(d, p, x, dyp + o0 * gplane, i, j, out + j, taps);
                for (; j < d.kw; ++j) filter_block<T, NB, 1, L>(d, p, x, dyp + o0 * gplane, i, j, out + j, taps);
            };
            for (; o + OB <= Og; o += OB) cols(std::integral_constant<int, OB>{}, o);
            for (; o < Og; ++o) cols(std::integral_constant<int, 1>{}, o);
        }
}

template <typename T>
MNN_ALWAYS_INLINE void filter_image_any(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og, const T* xp,
                                        const T* dyp, T* dw) {
    constexpr int L = 64 / sizeof(T);
    if (p.OWp % L == 0) filter_image<T, L>(d, p, Cg, Og, xp, dyp, dw);
    else filter_image<T, L / 2>(d, p, Cg, Og, xp, dyp, dw);
}

MNN_MULTIVERSION void filter_image_f32(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og,
                                       const float* xp, const float* dyp, float* dw) {
    filter_image_any(d, p, Cg, Og, xp, dyp, dw);
}
MNN_MULTIVERSION void filter_image_f64(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og,
                                       const double* xp, const double* dyp, double* dw) {
    filter_image_any(d, p, Cg, Og, xp, dyp, dw);
}
inline void filter_image_dispatch(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og, const float* xp,
                                  const float* dyp, float* dw) {
    filter_image_f32(d, p, Cg, Og, xp, dyp, dw);
}
inline void filter_image_dispatch(const DirectConv& d, const Padded& p, int64_t Cg, int64_t Og, const double* xp,
                                  const double* dyp, double* dw) {
    filter_image_f64(d, p, Cg, Og, xp, dyp, dw);
}

}  // namespace

namespace convgeom {

bool direct_conv_suits(const DirectConv& d, int64_t max_taps) {
    const int64_t Cg = d.C / d.G;
    return d.sw == 1 && Cg * d.kh * d.kw <= max_taps && d.OW > 0 && d.OH > 0;
}

template <typename T>
void conv2d_direct(const DirectConv& d, const T* x, const T* w, const T* bias, T* y) {
    const Padded p = padded_geometry(d, lanes_for<T>(d));
    const int64_t Cg = d.C / d.G, Og = d.O / d.G, P = d.OH * d.OW, taps = Cg * d.kh * d.kw;
    std::vector<T> xp(size_t(d.N * d.C * p.Hp * p.Wp));
    pad_planes(d, p, x, xp.data());
    const int64_t row_flops = 2 * Og * taps * p.OWp;
    parallel_for(d.N * d.G * d.OH, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, row_flops)),
                 [&](int64_t r0, int64_t r1) {
                     for (int64_t r = r0; r < r1; ++r) {
                         const int64_t oh = r % d.OH, ng = r / d.OH, grp = ng % d.G, n = ng / d.G;
                         fwd_row_dispatch(d, p, Cg, Og, xp.data() + (n * d.C + grp * Cg) * p.Hp * p.Wp,
                                          w + grp * Og * taps, bias ? bias + grp * Og : nullptr, oh,
                                          y + (n * d.O + grp * Og) * P, P);
                     }
                 });
}

template <typename T>
void conv2d_filter_direct(const DirectConv& d, const T* x, const T* dy, T* dw) {
    const Padded p = padded_geometry(d, lanes_for<T>(d));
    const int64_t Cg = d.C / d.G, Og = d.O / d.G, out_size = d.O * Cg * d.kh * d.kw;
    std::vector<T> xp(size_t(d.N * d.C * p.Hp * p.Wp));
    pad_planes(d, p, x, xp.data());
    // dy with rows padded to OWp by zeros (they add nothing)
    std::vector<T> dyp(size_t(d.N * d.O * d.OH * p.OWp), T(0));
    parallel_for(d.N * d.O * d.OH, 4096, [&](int64_t a, int64_t b) {
        for (int64_t r = a; r < b; ++r) std::copy(dy + r * d.OW, dy + (r + 1) * d.OW, dyp.data() + r * p.OWp);
    });
    // (image, group) tasks split over the threads, each summing into its own copy of dW
    const int64_t tasks = d.N * d.G, threads = std::max<int64_t>(1, std::min<int64_t>(get_thread_number(), tasks));
    std::vector<T> partial(size_t(threads * out_size), T(0));
    parallel_for(threads, 1, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) {
            T* acc = partial.data() + k * out_size;
            for (int64_t t = tasks * k / threads; t < tasks * (k + 1) / threads; ++t) {
                const int64_t n = t / d.G, grp = t % d.G;
                filter_image_dispatch(d, p, Cg, Og, xp.data() + (n * d.C + grp * Cg) * p.Hp * p.Wp,
                                      dyp.data() + (n * d.O + grp * Og) * d.OH * p.OWp,
                                      acc + grp * Og * Cg * d.kh * d.kw);
            }
        }
    });
    std::fill(dw, dw + out_size, T(0));
    for (int64_t k = 0; k < threads; ++k)
        for (int64_t q = 0; q < out_size; ++q) dw[q] += partial[size_t(k * out_size + q)];
}

template void conv2d_direct<float>(const DirectConv&, const float*, const float*, const float*, float*);
template void conv2d_direct<double>(const DirectConv&, const double*, const double*, const double*, double*);
template void conv2d_filter_direct<float>(const DirectConv&, const float*, const float*, float*);
template void conv2d_filter_direct<double>(const DirectConv&, const double*, const double*, double*);

}  // namespace convgeom
}  // namespace mnn
