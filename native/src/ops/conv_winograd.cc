// Winograd convolution F(m x m, 3 x 3), m = 2, 4, 6 (declared in conv_winograd.h).
//
// Per image, when there are at least two panels of tiles per thread (or one thread runs all),
// each thread takes an equal share of the tiles through the three steps below, a block at a
// time (its transformed input and GEMM output stay in that core's cache); otherwise three passes, each
// split across the pool's threads:
//  1. input transform, a task per input channel: tiles are numbered "wide" (one spare tile per
//     tile row, see fill_plane) and the channel split into m column phases per tile row, so
//     that input-tile element (r, s) of consecutive tiles is one contiguous span; vectors
//     across tiles are transformed (V = B^T d B) and written straight into the GEMM's packed
//     B panels, one packed matrix V_xy[C, tiles] per tile position xy (alpha = m + 2, alpha^2
//     of them);
//  2. alpha^2 GEMMs Y_xy[O, tiles] = U_xy[O, C] @ V_xy with the per-ISA macro-kernel, U
//     (G g G^T, computed in double) packed once per weight tensor and cached like conv_gemm's
//     packed weights (weak reference to the weight's storage; never for rewritable bytes);
//  3. output transform, a task per (output channel, tile row): y = A^T Y A with vectors across
//     tiles, scattered into the output rows, then the conv epilogue (bias, fused ops) on them.
//
// Transform matrices (Toom-Cook, interpolation points below plus infinity), derived for this
// file: for finite points a_j, A^T[i][j] = a_j^i, G[j][k] = a_j^k / prod_{l != j} (a_j - a_l),
// B^T row j = the coefficients (low to high) of prod_{l != j} (x - a_l); for infinity,
// A^T and G select the last element and B^T row is the coefficients of prod_l (x - a_l).
//   F(2,3): 0, 1, -1         F(4,3): 0, 1, -1, 2, -2         F(6,3): 0, 1, -1, 2, -2, 1/2, -1/2
// B^T and A^T are dyadic (exact in float); G's entries are rounded once, in double, per weight.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "ops/conv_regepi.h"
#include "ops/conv_weight_cache.h"
#include "ops/conv_winograd.h"
#include "ops/gemm_kernels.h"
#include "ops/isa_variants.h"
#include "ops/simd_span.h"

namespace mnn {

template <typename T> const gemmk::KernelSet<T>& gemm_kernel_set(CpuLevel level);  // gemm.cc

namespace convgeom {
namespace {

// ---- transform matrices --------------------------------------------------------------------------

template <int M> struct Tab;
template <> struct Tab<2> {
    static constexpr int A = 4;
    static constexpr double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, 1}};
    static constexpr double G[4][3] = {{-1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    static constexpr double BT[4][4] = {{-1, 0, 1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, -1, 0, 1}};
};
template <> struct Tab<4> {
    static constexpr int A = 6;
    static constexpr double AT[4][6] = {
        {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
    static constexpr double G[6][3] = {{1.0 / 4, 0, 0},
                                       {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                       {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                       {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                       {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                       {0, 0, 1}};
    static constexpr double BT[6][6] = {{4, 0, -5, 0, 1, 0},   {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                        {0, -2, -1, 2, 1, 0},  {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
};
template <> struct Tab<6> {
    static constexpr int A = 8;
    static constexpr double AT[6][8] = {{1, 1, 1, 1, 1, 1, 1, 0},
                                        {0, 1, -1, 2, -2, 0.5, -0.5, 0},
                                        {0, 1, 1, 4, 4, 0.25, 0.25, 0},
                                        {0, 1, -1, 8, -8, 0.125, -0.125, 0},
                                        {0, 1, 1, 16, 16, 0.0625, 0.0625, 0},
                                        {0, 1, -1, 32, -32, 0.03125, -0.03125, 1}};
    static constexpr double G[8][3] = {{-1, 0, 0},
                                       {-2.0 / 9, -2.0 / 9, -2.0 / 9},
                                       {-2.0 / 9, 2.0 / 9, -2.0 / 9},
                                       {1.0 / 90, 1.0 / 45, 2.0 / 45},
                                       {1.0 / 90, -1.0 / 45, 2.0 / 45},
                                       {32.0 / 45, 16.0 / 45, 8.0 / 45},
                                       {32.0 / 45, -16.0 / 45, 8.0 / 45},
                                       {0, 0, 1}};
    static constexpr double BT[8][8] = {{-1, 0, 5.25, 0, -5.25, 0, 1, 0},
                                        {0, 1, 1, -4.25, -4.25, 1, 1, 0},
                                        {0, -1, 1, 4.25, -4.25, -1, 1, 0},
                                        {0, 0.5, 0.25, -2.5, -1.25, 2, 1, 0},
                                        {0, -0.5, 0.25, 2.5, -1.25, -2, 1, 0},
                                        {0, 2, 4, -2.5, -5, 0.5, 1, 0},
                                        {0, -2, 4, 2.5, -5, -0.5, 1, 0},
                                        {0, -1, 0, 5.25, 0, -5.25, 0, 1}};
};

template <int M> struct BTm {
    static constexpr int rows = Tab<M>::A, cols = Tab<M>::A;
    static constexpr double v(int i, int j) { return Tab<M>::BT[i][j]; }
};
template <int M> struct ATm {
    static constexpr int rows = M, cols = Tab<M>::A;
    static constexpr double v(int i, int j) { return Tab<M>::AT[i][j]; }
};

template <typename Mat, int I>
constexpr int first_nonzero() {
    for (int r = 0; r < Mat::cols; ++r)
        if (Mat::v(I, r) != 0.0) return r;
    return -1;
}

// One term of out[0:L] = sum_r Mat(I, r) * in_r[0:L], the matrix known at compile time (zero
// terms vanish, +-1 need no multiply).
template <typename T, int L, typename Mat, int I, int R>
MNN_ALWAYS_INLINE void term(T* __restrict out, const T* __restrict in) {
    constexpr double c = Mat::v(I, R);
    if constexpr (c == 0.0) {
        return;
    } else if constexpr (R == first_nonzero<Mat, I>()) {
        for (int l = 0; l < L; ++l) out[l] = c == 1.0 ? in[l] : c == -1.0 ? -in[l] : T(c) * in[l];
    } else if constexpr (c == 1.0) {
        for (int l = 0; l < L; ++l) out[l] += in[l];
    } else if constexpr (c == -1.0) {
        for (int l = 0; l < L; ++l) out[l] -= in[l];
    } else {
        for (int l = 0; l < L; ++l) out[l] += T(c) * in[l];
    }
}

template <typename T, int L, typename Mat, int I, int... R>
MNN_ALWAYS_INLINE void combine_row(T* out, const T* in, int64_t istride, std::integer_sequence<int, R...>) {
    (term<T, L, Mat, I, R>(out, in + R * istride), ...);
}

// out[i * ostride + 0:L] = sum_r Mat(i, r) in[r * istride + 0:L], every row i of Mat.
template <typename T, int L, typename Mat, int... I>
MNN_ALWAYS_INLINE void combine(T* out, int64_t ostride, const T* in, int64_t istride,
                               std::integer_sequence<int, I...>) {
    (combine_row<T, L, Mat, I>(out + I * ostride, in, istride, std::make_integer_sequence<int, Mat::cols>()), ...);
}

// ---- per-call geometry ------------------------------------------------------------------------------

using simd::Scratch;
thread_local Scratch t_plane, t_v, t_y, t_vb, t_yb, t_wt;

struct Job {
    const DirectConv* d;
    const gemmk::KernelSet<float>* ks;
    const EpiRt<float>* epi;
    const float* x;  // this image
    float* y;        // this image
    int64_t n;       // image index (epilogue operands)
    const float* U;  // packed transformed weights: tile position xy at U + xy * mpad * C
    float* V;        // packed transformed input of wide tiles [qa, qb): xy at V + xy * vstride, depth block
                     // at pc * vn, then NR-tile panels (qa a multiple of NR)
    float* Y;        // GEMM output: xy at Y + xy * ystride, channel o's row at + o * ldy, tile q at q - qa
    int64_t qa, qb, vn;         // the wide tiles in V and Y, and V's columns (qb - qa rounded to NR)
    int64_t TH, TW, KW, Q;      // tile rows, tile columns, wide tile columns (TW + 1), wide tiles TH * KW
    int64_t qs;                 // a phase plane's length (Q + slack)
    int64_t npad, ldy;          // wide tiles rounded to NR; Y's row length
    int64_t vstride, ystride;   // distance between tile positions in V and Y
    int64_t kc_max, nk, mpad;   // the depth blocks over C, output channels rounded to MR
#if defined(MNN_SPAN_MASKS)
    // AVX-512 and a chain with a register form (conv_regepi.h): the epilogue in one pass
    void (*reg_rows)(const RegRowsArgs&);
    const RegPlan* reg_plan;
#endif
};

// Tiles are numbered "wide": tile (ty, tx) is q = ty * KW + tx with KW = TW + 1 (one unused
// tile per row), so that in the phase planes of a channel,
//   plane[(r * M + ph) * qs + ty * KW + k] = x[c, ty*M + r - pt, k*M + ph - pl]  (0 outside),
// input-tile element (r, s) of consecutive tiles q is the contiguous span
// plane[(r * M + s % M) * qs + s / M + q]: the transforms read whole vectors across tiles.
// dst[ph * ld + k] = src[k * M + ph], k < n (each input row split into its column phases once).
template <int M>
MNN_ALWAYS_INLINE void deinterleave(const float* __restrict src, float* __restrict dst, int64_t ld, int64_t n) {
    for (int64_t k = 0; k < n; ++k)
        for (int ph = 0; ph < M; ++ph) dst[ph * ld + k] = src[k * M + ph];
}

template <int M, int L>
MNN_ALWAYS_INLINE void fill_plane(const Job& jb, int64_t c, float* plane, int64_t ty0, int64_t ty1) {
    constexpr int A = M + 2;
    const DirectConv& d = *jb.d;
    const float* xc = jb.x + c * d.H * d.W;
    const int64_t KW = jb.KW, qs = jb.qs;
    // columns k with every phase inside [0, W): k*M - pl >= 0 and k*M + M - 1 - pl < W
    const int64_t k0 = std::min<int64_t>(KW, (d.pl + M - 1) / M);
    const int64_t k1 = std::max<int64_t>(k0, std::min<int64_t>(KW, d.W + d.pl >= M ? (d.W + d.pl - M) / M + 1 : 0));
    for (int r = 0; r < A; ++r)
        for (int64_t ty = ty0; ty < ty1; ++ty) {
            const int64_t ih = ty * M + r - d.pt;
            float* dst = plane + r * M * qs + ty * KW;
            if (ih < 0 || ih >= d.H) {
                for (int ph = 0; ph < M; ++ph) simd::zero<float, L>(dst + ph * qs, KW);
                continue;
            }
            const float* src = xc + ih * d.W - d.pl;  // src[k*M + ph] is column k*M + ph - pl
            auto edge = [&](int64_t k) {
                for (int ph = 0; ph < M; ++ph) {
                    const int64_t iw = k * M + ph - d.pl;
                    dst[ph * qs + k] = iw >= 0 && iw < d.W ? src[k * M + ph] : 0.f;
                }
            };
            for (int64_t k = 0; k < k0; ++k) edge(k);
            deinterleave<M>(src + k0 * M, dst + k0, qs, k1 - k0);
            for (int64_t k = k1; k < KW; ++k) edge(k);
        }
    // past the last band filled: the next band's first column (read by its last, spare tile) or
    // the slack after the last tile row (read by the last chunk's unused lanes)
    for (int rp = 0; rp < A * M; ++rp)
        if (ty1 < jb.TH) plane[rp * qs + ty1 * KW] = 0.f;
        else simd::zero<float, L>(plane + rp * qs + jb.Q, qs - jb.Q);
}

// Input transform of channel c, every wide tile, into V.
template <int M, int L>
MNN_ALWAYS_INLINE void input_task(const Job& jb, int64_t c) {
    constexpr int A = Tab<M>::A;
    const int NR = jb.ks->nr;
    float* plane = t_plane.get<float>(size_t(A * M * jb.qs));
    fill_plane<M, L>(jb, c, plane, jb.qa / jb.KW, std::min(jb.TH, (jb.qb - 1) / jb.KW + 1));
    const int64_t C = jb.d->C, pc = c / jb.kc_max * jb.kc_max, kc = std::min(jb.kc_max, C - pc);
    const int64_t xystride = jb.vstride, qs = jb.qs;
    float* vc = jb.V + pc * jb.vn + (c - pc) * NR;
    alignas(64) float tmp[A * A * L];
    for (int64_t q0 = jb.qa; q0 < jb.qb; q0 += L) {
        // tmp[(xi*A + s) * L] = sum_r BT[xi][r] d[r][s]
        for (int s = 0; s < A; ++s)
            combine<float, L, BTm<M>>(tmp + s * L, A * L, plane + (s % M) * qs + s / M + q0, M * qs,
                                      std::make_integer_sequence<int, A>());
        // V[xi][nu] = sum_s BT[nu][s] tmp[xi][s]
        float* v = vc + (q0 - jb.qa) / NR * NR * kc + (q0 - jb.qa) % NR;
        for (int xi = 0; xi < A; ++xi)
            combine<float, L, BTm<M>>(v + xi * A * xystride, xystride, tmp + xi * A * L, L,
                                      std::make_integer_sequence<int, A>());
    }
}

// dst[l * M + j] = src[j * L + l]: M columns of L tiles back into one output row.
template <int M, int L>
MNN_ALWAYS_INLINE void interleave(const float* __restrict src, float* __restrict dst) {
    for (int l = 0; l < L; ++l)
        for (int j = 0; j < M; ++j) dst[l * M + j] = src[j * L + l];
}

// Output transform of channel o, tile row ty, then the epilogue on its output rows.
template <int M, int L>
MNN_ALWAYS_INLINE void output_task(const Job& jb, int64_t o, int64_t ty) {
    constexpr int A = Tab<M>::A;
    const DirectConv& d = *jb.d;
    const int64_t P = d.OH * d.OW, xystride = jb.ystride;
    const float* yo = jb.Y + o * jb.ldy + ty * jb.KW - jb.qa;
    float* out = jb.y + o * P + ty * M * d.OW;
    const int64_t nrows = std::min<int64_t>(M, d.OH - ty * M);
    // this row's tiles among [qa, qb)
    const int64_t t0 = std::max<int64_t>(0, jb.qa - ty * jb.KW), t1 = std::min(jb.TW, jb.qb - ty * jb.KW);
    if (t1 <= t0) return;
    alignas(64) float tmp[M * A * L];
    alignas(64) float ob[M * M * L];
    for (int64_t k0 = t0; k0 < t1; k0 += L) {
        // tmp[(i*A + nu) * L] = sum_xi AT[i][xi] Y[xi][nu]
        for (int nu = 0; nu < A; ++nu)
            combine<float, L, ATm<M>>(tmp + nu * L, A * L, yo + nu * xystride + k0, A * xystride,
                                      std::make_integer_sequence<int, M>());
        // ob[(i*M + j) * L] = sum_nu AT[j][nu] tmp[i][nu]
        for (int i = 0; i < M; ++i)
            combine<float, L, ATm<M>>(ob + i * M * L, L, tmp + i * A * L, L, std::make_integer_sequence<int, M>());
        // the chunk's columns of each output row: its tiles' M columns interleaved, then the
        // columns inside the row (and this block) copied out
        const int64_t c0 = k0 * M, n = std::min(std::min<int64_t>(L, t1 - k0) * M, d.OW - c0);
        alignas(64) float buf[M * L];
        for (int64_t i = 0; i < nrows; ++i) {
            interleave<M, L>(ob + i * M * L, buf);
            simd::copy<float, L>(out + i * d.OW + c0, buf, n);
        }
    }
#if defined(MNN_SPAN_MASKS)
    if (jb.reg_rows) {  // (rows of a whole tile row are contiguous: one span)
        const bool whole = t0 == 0 && t1 == jb.TW;
        const int64_t c0 = whole ? 0 : t0 * M, len = whole ? nrows * d.OW : std::min(d.OW, t1 * M) - c0;
        for (int64_t i = 0; i < (whole ? 1 : nrows); ++i)
            jb.reg_rows(RegRowsArgs{jb.epi, jb.reg_plan, jb.n, o, (ty * M + i) * d.OW + c0, 1, len, P,
                                    out + i * d.OW + c0});
        return;
    }
#endif
    if (t0 == 0 && t1 == jb.TW) {
        epilogue_block<float, L>(*jb.epi, jb.n, o, 1, ty * M * d.OW, out, P, nrows * d.OW);
    } else {  // part of the row: its columns in each output row
        const int64_t c0 = t0 * M, c1 = std::min(d.OW, t1 * M);
        for (int64_t i = 0; i < nrows; ++i)
            epilogue_block<float, L>(*jb.epi, jb.n, o, 1, (ty * M + i) * d.OW + c0, out + i * d.OW + c0, P, c1 - c0);
    }
}

#define MNN_WINO_IN(M, L) input_task<M, L>(jb, c)
#define MNN_WINO_OUT(M, L) output_task<M, L>(jb, o, ty)
#define MNN_WINO_IN2(L) MNN_WINO_IN(2, L)
#define MNN_WINO_IN4(L) MNN_WINO_IN(4, L)
#define MNN_WINO_IN6(L) MNN_WINO_IN(6, L)
#define MNN_WINO_OUT2(L) MNN_WINO_OUT(2, L)
#define MNN_WINO_OUT4(L) MNN_WINO_OUT(4, L)
#define MNN_WINO_OUT6(L) MNN_WINO_OUT(6, L)
MNN_ISA_VARIANTS_LANES(wino_in2, (const Job& jb, int64_t c), MNN_WINO_IN2, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(wino_in4, (const Job& jb, int64_t c), MNN_WINO_IN4, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(wino_in6, (const Job& jb, int64_t c), MNN_WINO_IN6, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(wino_out2, (const Job& jb, int64_t o, int64_t ty), MNN_WINO_OUT2, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(wino_out4, (const Job& jb, int64_t o, int64_t ty), MNN_WINO_OUT4, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(wino_out6, (const Job& jb, int64_t o, int64_t ty), MNN_WINO_OUT6, 16, 8, 4)

// ---- transformed, packed weights (cached per weight tensor) -------------------------------------------

struct PackedU : WeightEntry {
    int m = 0;
    CpuLevel level = CpuLevel::Generic;
    int64_t kc_max = 0, nk = 0, mpad = 0;
    float* data = nullptr;  // alpha^2 * mpad * C values: xy at xy * mpad * C, depth block at pc * mpad
    ~PackedU() {
        if (data) ::operator delete(data, std::align_val_t(64));
    }
};

WeightCache<PackedU>& u_cache() {
    static auto* c = new WeightCache<PackedU>();  // (never destroyed: used from pool threads at exit)
    return *c;
}

template <int M>
void transform_weights(const float* w, int64_t O, int64_t C, float* u) {
    // u[(xy * O + o) * C + c] = (G g G^T)[xi][nu], g = w[o, c], in double
    constexpr int A = Tab<M>::A;
    parallel_for(O, 4, [&](int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; ++o)
            for (int64_t c = 0; c < C; ++c) {
                const float* g = w + (o * C + c) * 9;
                double t[A][3];  // G g
                for (int xi = 0; xi < A; ++xi)
                    for (int j = 0; j < 3; ++j)
                        t[xi][j] = Tab<M>::G[xi][0] * g[j] + Tab<M>::G[xi][1] * g[3 + j] + Tab<M>::G[xi][2] * g[6 + j];
                for (int xi = 0; xi < A; ++xi)
                    for (int nu = 0; nu < A; ++nu)
                        u[((xi * A + nu) * O + o) * C + c] = float(
                            t[xi][0] * Tab<M>::G[nu][0] + t[xi][1] * Tab<M>::G[nu][1] + t[xi][2] * Tab<M>::G[nu][2]);
            }
    });
}

std::shared_ptr<const PackedU> packed_u(const Tensor& w, int m, const gemmk::KernelSet<float>& ks, CpuLevel level) {
    if (auto hit = u_cache().find(w, [&](const PackedU& p) { return p.m == m && p.level == level; })) return hit;
    auto p = std::make_shared<PackedU>();
    p->set_source(w);
    p->m = m;
    p->level = level;
    const int64_t O = w.shape()[0], C = w.shape()[1], A = m + 2, AA = A * A;
    p->nk = (C + ks.kc - 1) / ks.kc;
    p->kc_max = (C + p->nk - 1) / p->nk;
    p->mpad = (O + ks.mr - 1) / ks.mr * ks.mr;
    p->bytes = size_t(AA * p->mpad * C) * sizeof(float);
    p->data = static_cast<float*>(::operator new(std::max<size_t>(p->bytes, 64), std::align_val_t(64)));
    float* u = t_wt.get<float>(size_t(AA * O * C));
    const float* wd = w.data<float>();
    if (m == 2) transform_weights<2>(wd, O, C, u);
    else if (m == 4) transform_weights<4>(wd, O, C, u);
    else transform_weights<6>(wd, O, C, u);
    const int64_t nk = p->nk, kc_max = p->kc_max, mpad = p->mpad;
    float* dst = p->data;
    parallel_for(AA * nk, 1, [&](int64_t a, int64_t b) {
        for (int64_t t = a; t < b; ++t) {
            const int64_t xy = t / nk, pc = (t % nk) * kc_max, kc = std::min(kc_max, C - pc);
            ks.pack_a(false, u + xy * O * C + pc, C, O, kc, dst + xy * mpad * C + pc * mpad);
        }
    });
    u_cache().insert(w, p);
    return p;
}

}  // namespace

int winograd_tile(const DirectConv& d, bool is_float32, bool weights_cached) {
    if (!is_float32 || d.kh != 3 || d.kw != 3 || d.sh != 1 || d.sw != 1 || d.dh != 1 || d.dw != 1 || d.G != 1)
        return 0;
    if (const char* env = std::getenv("MNN_CONV_WINOGRAD")) {
        if (!std::strcmp(env, "0")) return 0;
        if (!std::strcmp(env, "2")) return 2;
        if (!std::strcmp(env, "4")) return 4;
        if (!std::strcmp(env, "6")) return 6;
    }
    // By a cost model fitted on ResNet-18's layers (2 threads, AVX-512; the choice only):
    // Winograd's (m+2)^2 GEMMs, bound by arithmetic or by streaming the transformed weights
    // (larger than the weights by (m+2)^2 / 9), plus the transforms and a fixed cost for its
    // three passes, against the implicit GEMM's 9 products per output.  Large planes get
    // F(4,3), ResNet's 14x14 F(2,3), its 7x7 (weights read once for 49 positions) none.
    const double C = double(d.C), O = double(d.O);
    const double direct = 2.0 * O * C * 9.0 * double(d.OH * d.OW) / 270e9;
    int best = 0;
    double best_t = 0.95 * direct;  // (a margin: Winograd is less accurate)
    for (int m : {2, 4, 6}) {
        const int64_t A = m + 2, th = (d.OH + m - 1) / m, tw = (d.OW + m - 1) / m;
        const double npad = double((th * (tw + 1) + 31) / 32 * 32), aa = double(A * A);
        const double gemm = std::max(2.0 * aa * npad * O * C / 280e9, aa * O * C * 4.0 / 19e9);
        const double transforms = (C + O) * npad * aa * (m == 2 ? 0.15e-9 : m == 4 ? 0.23e-9 : 0.4e-9);
        // weights that cannot be cached (bytes someone may rewrite) are transformed on every call
        const double weights = weights_cached ? 0.0 : aa * O * C * 8e-9 / double(std::max<int64_t>(1, d.N));
        const double t = gemm + transforms + weights + 20e-6;
        if (t < best_t) {
            best_t = t;
            best = m;
        }
    }
    return best;
}

void conv2d_winograd(const DirectConv& d, int m, const float* x, const Tensor& w, const EpiRt<float>& epi,
                     float* y) {
    const CpuLevel level = active_level();
    const gemmk::KernelSet<float>& ks = gemm_kernel_set<float>(level);
    std::shared_ptr<const PackedU> pu = packed_u(w, m, ks, level);
    const int64_t A = m + 2, AA = A * A, C = d.C, O = d.O, NR = ks.nr, MR = ks.mr;
    Job jb{};
    jb.d = &d;
    jb.ks = &ks;
    jb.epi = &epi;
#if defined(MNN_SPAN_MASKS)
    RegPlan reg_plan;
    if (level == CpuLevel::Avx512) reg_plan = reg_epi_select(epi);
    if (reg_plan.chain != RegChain::Other && reg_plan.chain != RegChain::None) {
        jb.reg_rows = reg_epi_pick<RegRows>(reg_plan.chain);
        jb.reg_plan = &reg_plan;
    }
#endif
    jb.U = pu->data;
    jb.TH = (d.OH + m - 1) / m;
    jb.TW = (d.OW + m - 1) / m;
    jb.KW = jb.TW + 1;
    jb.Q = jb.TH * jb.KW;
    jb.npad = (jb.Q + NR - 1) / NR * NR;
    jb.qs = jb.npad + 16;       // (the transform reads whole chunks of NR tiles, one column further)
    jb.ldy = jb.npad + 16;      // (the output transform reads whole vectors past the last tile)
    // (+16: tile positions not a multiple of 4 KiB apart, which would share L1 sets)
    jb.vstride = C * jb.npad + 16;
    jb.ystride = O * jb.ldy + 16;
    jb.kc_max = pu->kc_max;
    jb.nk = pu->nk;
    jb.mpad = pu->mpad;
    jb.qa = 0;
    jb.qb = jb.vn = jb.npad;

    const auto in_task = m == 2 ? wino_in2_for(level) : m == 4 ? wino_in4_for(level) : wino_in6_for(level);
    const auto out_task = m == 2 ? wino_out2_for(level) : m == 4 ? wino_out4_for(level) : wino_out6_for(level);
    const int threads = std::max(1, get_thread_number());
    const int64_t mp = (O + MR - 1) / MR, npan = jb.npad / NR;
    const float* Ub = jb.U;

    // Blocked: each thread takes an equal share of the tiles through all three steps, a block of a
    // few panels at a time, its transformed input and GEMM output staying in that core's cache
    // (each block reads all the transformed weights: when they are large, one block per thread).
    // Shares are whole units of 16 tiles where panels are 32 wide (so 7 panels split 3.5 / 3.5,
    // not 4 / 3), else whole panels.
    const int64_t unit = NR > 16 && NR % 16 == 0 ? 16 : NR;
    const int64_t panel_bytes = AA * C * NR * int64_t(sizeof(float)), units = jb.npad / unit;
    const bool big_u = pu->bytes > (size_t(1) << 20);
    const int64_t block_units =
        big_u ? (units + threads - 1) / threads
              : NR / unit * std::max<int64_t>(1, std::min<int64_t>((int64_t(1) << 19) / panel_bytes,
                                                                    npan / (2 * threads)));
    if (threads == 1 || units >= 2 * threads) {
        const int64_t shares = std::min<int64_t>(threads, units);
        for (int64_t n = 0; n < d.N; ++n) {
            jb.n = n;
            jb.x = x + n * C * d.H * d.W;
            jb.y = y + n * O * d.OH * d.OW;
            parallel_for_ranges(shares, [&](int64_t s0, int64_t s1) {  // (thread t: share t, rows in order)
                for (int64_t share = s0; share < s1; ++share)
                    for (int64_t u = share * units / shares, u1 = (share + 1) * units / shares; u < u1;
                         u += block_units) {
                        Job j = jb;
                        j.qa = u * unit;
                        j.qb = std::min(u1, u + block_units) * unit;
                        const int64_t nc = j.qb - j.qa;
                        j.vn = (nc + NR - 1) / NR * NR;  // (V's panels are NR wide; a half one is padding)
                        j.ldy = j.vn + 16;
                        j.vstride = C * j.vn + 16;
                        j.ystride = O * j.ldy + 16;
                        j.V = t_vb.get<float>(size_t(AA * j.vstride));
                        j.Y = t_yb.get<float>(size_t(AA * j.ystride));
                        for (int64_t c = 0; c < C; ++c) in_task(j, c);
                        for (int64_t xy = 0; xy < AA; ++xy)
                            for (int64_t p = 0; p < j.nk; ++p) {
                                const int64_t pc = p * j.kc_max, kc = std::min(j.kc_max, C - pc);
                                ks.macro(O, nc, kc, Ub + xy * j.mpad * C + pc * j.mpad,
                                         j.V + xy * j.vstride + pc * j.vn, j.Y + xy * j.ystride, j.ldy, 1.f,
                                         p == 0 ? 0.f : 1.f);
                            }
                        const int64_t ty0 = j.qa / j.KW, ty1 = std::min(j.TH, (j.qb - 1) / j.KW + 1);
                        for (int64_t o = 0; o < O; ++o)
                            for (int64_t ty = ty0; ty < ty1; ++ty) out_task(j, o, ty);
                    }
            });
        }
        return;
    }

    // Three passes over all tiles, each split across the threads.
    jb.V = t_v.get<float>(size_t(AA * jb.vstride));
    jb.Y = t_y.get<float>(size_t(AA * jb.ystride));
    // GEMM tasks: (tile position, block of output channels, block of tile panels)
    int64_t rb = std::max<int64_t>(1, (O + 127) / 128), cb = 1;
    while (AA * rb * cb < 4 * threads && cb * 2 <= npan) cb *= 2;
    const int64_t gemm_tasks = AA * rb * cb;
    for (int64_t n = 0; n < d.N; ++n) {
        jb.n = n;
        jb.x = x + n * C * d.H * d.W;
        jb.y = y + n * O * d.OH * d.OW;
        parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
            for (int64_t c = c0; c < c1; ++c) in_task(jb, c);
        });
        parallel_for(gemm_tasks, 1, [&](int64_t a, int64_t b) {
            for (int64_t t = a; t < b; ++t) {
                const int64_t xy = t / (rb * cb), r = t / cb % rb, q = t % cb;
                const int64_t i0 = r * mp / rb * MR, i1 = std::min(O, (r + 1) * mp / rb * MR);
                const int64_t q0 = q * npan / cb, q1 = (q + 1) * npan / cb;
                if (i0 >= i1 || q0 >= q1) continue;
                const float* U = Ub + xy * jb.mpad * C;
                const float* V = jb.V + xy * jb.vstride;
                float* Y = jb.Y + xy * jb.ystride + i0 * jb.ldy + q0 * NR;
                for (int64_t p = 0; p < jb.nk; ++p) {
                    const int64_t pc = p * jb.kc_max, kc = std::min(jb.kc_max, C - pc);
                    ks.macro(i1 - i0, (q1 - q0) * NR, kc, U + pc * jb.mpad + i0 * kc, V + pc * jb.npad + q0 * NR * kc,
                             Y, jb.ldy, 1.f, p == 0 ? 0.f : 1.f);
                }
            }
        });
        parallel_for(O * jb.TH, std::max<int64_t>(1, 8 / jb.TW), [&](int64_t a, int64_t b) {
            for (int64_t t = a; t < b; ++t) out_task(jb, t / jb.TH, t % jb.TH);
        });
    }
}

void clear_winograd_weights() { u_cache().clear(); }

int64_t winograd_weights_bytes() { return u_cache().bytes(); }

}  // namespace convgeom
}  // namespace mnn
