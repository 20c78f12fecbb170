// Channel-blocked convolution kernels (conv_blocked.h).  Portable code over 16-lane GCC
// vectors compiled per ISA (isa_variants.h): a vector is one zmm in the AVX-512 variant,
// two ymm in the AVX2 one, four xmm in the baseline; register tiles follow the register
// file.  Work is split over the pool by variant-independent tasks; each task runs the
// variant's range function (a lambda would be compiled for the baseline).
#include "ops/conv_blocked.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "ops/conv_regepi.h"
#include "ops/conv_weight_cache.h"
#include "ops/isa_variants.h"

// (The 64-byte vector type is only passed through always-inline helpers, inlined into each variant.)
#pragma GCC diagnostic ignored "-Wpsabi"

namespace mnn {
namespace convgeom {

BlockedConv blocked_conv_kind(const DirectConv& d) {
    if (d.G == 1 && d.kh == 1 && d.kw == 1 && d.sh == 1 && d.sw == 1 && d.pt == 0 && d.pl == 0 && d.OH == d.H &&
        d.OW == d.W)
        return BlockedConv::Pointwise;
    if (d.G > 1 && d.G == d.C && d.O == d.C) return BlockedConv::Depthwise;
    if (d.G == 1 && d.C <= kDenseMaxChannels && d.kh * d.kw <= 49) return BlockedConv::Dense;
    return BlockedConv::None;
}

namespace {

constexpr int B = int(kChannelBlock);

// Register tiles are arrays of vectors indexed by loop counters: the loops must be unrolled
// completely, or the arrays live on the stack.
#define MNN_UNROLL _Pragma("GCC unroll 32")
typedef float V __attribute__((vector_size(B * sizeof(float))));

MNN_ALWAYS_INLINE V vload(const float* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}
MNN_ALWAYS_INLINE void vstore(float* p, V v) { std::memcpy(p, &v, sizeof(V)); }

// ---- weights in the blocked kernels' layout: [ceil(O / 16)][rows][16] (output channels past O zero) ----
// rows: Pointwise, the input channels rounded up to 16 (zero past C); Depthwise, the kh * kw taps;
// Dense, C * kh * kw.

struct BlockedWeights : WeightEntry {
    BlockedConv kind = BlockedConv::None;
    int64_t rows = 0;
    std::vector<float> w;
};

WeightCache<BlockedWeights>& weight_cache() {
    static auto* c = new WeightCache<BlockedWeights>();  // (never destroyed: used from pool threads at exit)
    return *c;
}

int64_t weight_rows(const DirectConv& d, BlockedConv kind) {
    const int64_t T = d.kh * d.kw;
    return kind == BlockedConv::Pointwise ? channel_blocks(d.C) * B : kind == BlockedConv::Depthwise ? T : d.C * T;
}

std::shared_ptr<const BlockedWeights> packed_weights(const DirectConv& d, BlockedConv kind, const Tensor& wt) {
    if (auto hit = weight_cache().find(wt, [&](const BlockedWeights& p) { return p.kind == kind; })) return hit;
    auto p = std::make_shared<BlockedWeights>();
    p->set_source(wt);
    p->kind = kind;
    p->rows = weight_rows(d, kind);
    const float* w = wt.data<float>();
    const int64_t per_o = wt.numel() / d.O;  // C / G * kh * kw weights per output channel
    const int64_t used = kind == BlockedConv::Pointwise ? d.C : p->rows;
    p->w.assign(size_t(channel_blocks(d.O) * p->rows * B), 0.f);
    for (int64_t o = 0; o < d.O; ++o)
        for (int64_t r = 0; r < used; ++r) p->w[size_t(((o / B) * p->rows + r) * B + o % B)] = w[o * per_o + r];
    p->bytes = p->w.size() * sizeof(float);
    weight_cache().insert(wt, p);
    return p;
}

// ---- the epilogue on a run of blocked output pixels --------------------------------------------

// A layer's epilogue and, at AVX-512 where the chain has a register form, that form: one pass
// over the stored pixels instead of one per op (on MobileNetV2's 1x1 tiles, three passes: bias,
// maximum, minimum).
struct BlockedEpi {
    const EpiRt<float>* e = nullptr;
#if defined(MNN_SPAN_MASKS)
    RegPlan plan;
    void (*reg)(const RegBlockArgs&) = nullptr;
#endif
};

BlockedEpi blocked_epi(const EpiRt<float>* e, CpuLevel level) {
    BlockedEpi be;
    be.e = e;
#if defined(MNN_SPAN_MASKS)
    if (e && level == CpuLevel::Avx512) {
        be.plan = reg_epi_select(*e);
        if (be.plan.chain != RegChain::Other) be.reg = reg_epi_pick<RegBlock>(be.plan.chain);
    }
#else
    (void)level;
#endif
    return be;
}

// Bias and ops on `npx` pixels [p0, p0 + npx) of output block `ob` (of Ob) of image n, at d; the
// lanes past the layer's channels are zeroed (the next kernel multiplies them by zero weights, and
// must not meet an inf there).
MNN_ALWAYS_INLINE void blocked_epilogue(const BlockedEpi& be, int64_t n, int64_t ob, int64_t Ob, int64_t p0, float* d,
                                        int64_t npx) {
    const EpiRt<float>& e = *be.e;
    const int64_t o0 = ob * B, valid = std::min<int64_t>(B, e.O - o0), len = npx * B;
#if defined(MNN_SPAN_MASKS)
    if (be.reg) return be.reg(RegBlockArgs{&e, &be.plan, o0, valid, npx, ((n * Ob + ob) * e.P + p0) * B, d});
#endif
    if (e.bias) {
        float bv[B] = {};
        for (int64_t l = 0; l < valid; ++l) bv[l] = e.bias[o0 + l];
        for (int64_t q = 0; q < npx; ++q) epi_whole<float, B, true, false>(d + q * B, B, bv, 0.f, EpiAdd());
    }
    const int64_t at = ((n * Ob + ob) * e.P + p0) * B;
    for (int k = 0; k < e.n_ops; ++k) {
        const EpiRt<float>::Op& op = e.ops[k];
        const float* full = op.operand == EpilogueOp::Full ? op.ptr + at : nullptr;
        switch (op.kind) {
            case EpilogueOp::Relu:
                epi_rows<float, B>(d, len, 1, len, EpilogueOp::None, false, op.ptr, 0, nullptr, 0, EpiRelu());
                break;
            case EpilogueOp::Add: epi_rows<float, B>(d, len, 1, len, op.operand, op.swap, op.ptr, 0, full, 0, EpiAdd()); break;
            case EpilogueOp::Sub: epi_rows<float, B>(d, len, 1, len, op.operand, op.swap, op.ptr, 0, full, 0, EpiSub()); break;
            case EpilogueOp::Mul: epi_rows<float, B>(d, len, 1, len, op.operand, op.swap, op.ptr, 0, full, 0, EpiMul()); break;
            case EpilogueOp::Max: epi_rows<float, B>(d, len, 1, len, op.operand, op.swap, op.ptr, 0, full, 0, EpiMax()); break;
            case EpilogueOp::Min: epi_rows<float, B>(d, len, 1, len, op.operand, op.swap, op.ptr, 0, full, 0, EpiMin()); break;
        }
    }
    if (valid < B)
        for (int64_t q = 0; q < npx; ++q) std::fill(d + q * B + valid, d + (q + 1) * B, 0.f);
}

// What every kernel's range function gets.  y is blocked, and e is null when that is a scratch
// reordered to NCHW afterwards (the epilogue then runs on the NCHW output); the pointwise kernel
// writes an NCHW output itself (y_nchw, its epilogue on each stored tile).
struct Args {
    DirectConv d;
    bool blocked_in;
    const float* x;
    const float* w;
    int64_t rows;  // of the packed weights, per output block
    float* y;
    const EpiRt<float>* e;
    float* y_nchw = nullptr;
    BlockedEpi be = {};          // e, as blocked_epilogue runs it
    bool full_operands = false;  // the epilogue reads a same-shape operand
    int64_t task_tiles = 4;      // pointwise: pixel tiles per task
    bool pixels_outer = false;   // pointwise: tasks ordered by pixels, then output blocks
};

// ---- pointwise: a tile of PX pixels x OB output blocks in registers ------------------------------
// Per input channel: OB weight vectors, and PX broadcast input values (from a blocked input, the
// PX pixels' lanes of one block; from NCHW, PX neighbours in a channel's plane).  K: the input
// channels (a blocked input's padding lanes are skipped).

// A task: 2 output blocks x 4 pixel tiles, or x 1 tile where that leaves too few tasks to balance
// (7x7 planes with 160 output channels: 5 tasks for 2 threads).
constexpr int64_t kPwTaskOb = 2;

// acc += the first n_lanes channels of one block of a blocked input (at xb) times their weights.
template <int PX, int OB>
MNN_ALWAYS_INLINE void pw_lanes(V (&acc)[PX][OB], const float* __restrict xb, const float* __restrict wb,
                                int64_t wstride, int64_t n_lanes) {
    for (int64_t l = 0; l < n_lanes; ++l) {
        V wv[OB];
        MNN_UNROLL
        for (int b = 0; b < OB; ++b) wv[b] = vload(wb + b * wstride + l * B);
        MNN_UNROLL
        for (int q = 0; q < PX; ++q) {
            const float s = xb[q * B + l];
            MNN_UNROLL
            for (int b = 0; b < OB; ++b) acc[q][b] += s * wv[b];
        }
    }
}

template <int PX, int OB, bool BIN>
MNN_ALWAYS_INLINE void pw_tile(const float* __restrict x, int64_t P, int64_t K, const float* __restrict w,
                               int64_t wstride, float* __restrict y, int64_t ystride) {
    V acc[PX][OB];
    MNN_UNROLL
    for (int q = 0; q < PX; ++q)
        MNN_UNROLL
        for (int b = 0; b < OB; ++b) acc[q][b] = V{};
    if constexpr (BIN) {
        const int64_t whole = K / B * B;
        for (int64_t kb = 0; kb < whole; kb += B) pw_lanes<PX, OB>(acc, x + kb * P, w + kb * B, wstride, B);
        if (whole < K) pw_lanes<PX, OB>(acc, x + whole * P, w + whole * B, wstride, K - whole);
    } else {
        for (int64_t c = 0; c < K; ++c) {
            const float* xr = x + c * P;
            V wv[OB];
            MNN_UNROLL
            for (int b = 0; b < OB; ++b) wv[b] = vload(w + b * wstride + c * B);
            MNN_UNROLL
            for (int q = 0; q < PX; ++q) {
                const float s = xr[q];
                MNN_UNROLL
                for (int b = 0; b < OB; ++b) acc[q][b] += s * wv[b];
            }
        }
    }
    MNN_UNROLL
    for (int b = 0; b < OB; ++b)
        MNN_UNROLL
        for (int q = 0; q < PX; ++q) vstore(y + b * ystride + q * B, acc[q][b]);
}

// pw_tile for a runtime pixel count px <= PX.
template <int PX, int OB, bool BIN>
MNN_ALWAYS_INLINE void pw_tile_n(int64_t px, const float* x, int64_t P, int64_t K, const float* w, int64_t wstride,
                                 float* y, int64_t ystride) {
    if constexpr (PX > 0) {
        if (px == PX) pw_tile<PX, OB, BIN>(x, P, K, w, wstride, y, ystride);
        else pw_tile_n<PX - 1, OB, BIN>(px, x, P, K, w, wstride, y, ystride);
    }
}

template <int PX, int OB, bool BIN>
MNN_ALWAYS_INLINE void pw_range_t(const Args& a, int64_t t0, int64_t t1) {
    const DirectConv& d = a.d;
    const int64_t P = d.OH * d.OW, Ob = channel_blocks(d.O);
    const int64_t K = d.C, xn = BIN ? channel_blocks(d.C) * B * P : d.C * P;
    const int64_t tiles = (P + PX - 1) / PX, chunks = (tiles + a.task_tiles - 1) / a.task_tiles;
    const int64_t groups = (Ob + kPwTaskOb - 1) / kPwTaskOb;
    const int64_t wstride = a.rows * B;
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / (groups * chunks);
        const int64_t g = a.pixels_outer ? t % groups : t / chunks % groups;
        const int64_t c = a.pixels_outer ? t / groups % chunks : t % chunks;
        const int64_t p_end = std::min(P, (c + 1) * a.task_tiles * PX);
        for (int64_t ob = g * kPwTaskOb; ob < std::min(Ob, (g + 1) * kPwTaskOb); ob += OB) {
            const int64_t nb = std::min<int64_t>(OB, Ob - ob);
            const float* w = a.w + ob * wstride;
            for (int64_t p = c * a.task_tiles * PX; p < p_end; p += PX) {
                const int64_t px = std::min<int64_t>(PX, p_end - p);
                const float* x = a.x + n * xn + (BIN ? p * B : p);
                if (a.y_nchw) {  // the tile in a buffer, then each channel's row of it to its plane
                    alignas(64) float tile[OB * PX * B];
                    if (nb == OB) pw_tile_n<PX, OB, BIN>(px, x, P, K, w, wstride, tile, PX * B);
                    else pw_tile_n<PX, 1, BIN>(px, x, P, K, w, wstride, tile, PX * B);
                    for (int64_t b = 0; b < nb; ++b) {
                        const int64_t o0 = (ob + b) * B, valid = std::min<int64_t>(B, d.O - o0);
                        float* y = a.y_nchw + (n * d.O + o0) * P + p;
                        // (without same-shape operands the epilogue runs on the tile, a vector per pixel)
                        if (!a.full_operands) blocked_epilogue(a.be, n, ob + b, Ob, p, tile + b * PX * B, px);
                        for (int64_t l = 0; l < valid; ++l)
                            for (int64_t q = 0; q < px; ++q) y[l * P + q] = tile[(b * PX + q) * B + l];
                        if (a.full_operands) epilogue_block<float, B>(*a.e, n, o0, valid, p, y, P, px);
                    }
                    continue;
                }
                float* y = a.y + ((n * Ob + ob) * P + p) * B;
                if (nb == OB) pw_tile_n<PX, OB, BIN>(px, x, P, K, w, wstride, y, P * B);
                else pw_tile_n<PX, 1, BIN>(px, x, P, K, w, wstride, y, P * B);
                if (a.e)
                    for (int64_t b = 0; b < nb; ++b) blocked_epilogue(a.be, n, ob + b, Ob, p, y + b * P * B, px);
            }
        }
    }
}

// Tiles per variant: 14 pixels x 2 blocks (28 zmm accumulators) with AVX-512, 6 x 1 (12 ymm pairs)
// with AVX2, 3 x 1 in the baseline.  (MobileNet's planes are multiples of 7 pixels wide.)
constexpr int pw_px(int lanes) { return lanes == 16 ? 14 : lanes == 8 ? 6 : 3; }
constexpr int pw_ob(int lanes) { return lanes == 16 ? 2 : 1; }
#define MNN_PW_CALL(L) \
    (a.blocked_in ? pw_range_t<pw_px(L), pw_ob(L), true>(a, t0, t1) : pw_range_t<pw_px(L), pw_ob(L), false>(a, t0, t1))
MNN_ISA_VARIANTS_LANES(pw_range, (const Args& a, int64_t t0, int64_t t1), MNN_PW_CALL, 16, 8, 4)
#undef MNN_PW_CALL

// The number of pointwise tasks, choosing a.task_tiles.
int64_t pw_tasks(Args& a, CpuLevel level) {
    const int px = level == CpuLevel::Avx512 ? pw_px(16) : level == CpuLevel::Avx2 ? pw_px(8) : pw_px(4);
    const int64_t P = a.d.OH * a.d.OW, tiles = (P + px - 1) / px;
    const int64_t groups = a.d.N * ((channel_blocks(a.d.O) + kPwTaskOb - 1) / kPwTaskOb);
    a.task_tiles = groups * ((tiles + 3) / 4) >= 8 * get_thread_number() ? 4 : 1;
    // More pixels than output channels (the activations outweigh the weights): tasks by pixels
    // first, so each thread's range of tasks (parallel_for_ranges) is a range of rows, the rows it
    // wrote in the step before; else by output blocks (each thread keeps its weights in cache).
    a.pixels_outer = P >= a.d.O;
    return groups * ((tiles + a.task_tiles - 1) / a.task_tiles);
}

// ---- depthwise: one vector per output pixel, four pixels at a time inside the image -------------

constexpr int64_t kRowsPerTask = 4;

MNN_ALWAYS_INLINE V dw_one(const DirectConv& d, const float* x, const float* w, int64_t oh, int64_t ow) {
    V acc = V{};
    for (int64_t kh = 0; kh < d.kh; ++kh) {
        const int64_t ih = oh * d.sh - d.pt + kh * d.dh;
        if (ih < 0 || ih >= d.H) continue;
        for (int64_t kw = 0; kw < d.kw; ++kw) {
            const int64_t iw = ow * d.sw - d.pl + kw * d.dw;
            if (iw >= 0 && iw < d.W) acc += vload(x + (ih * d.W + iw) * B) * vload(w + (kh * d.kw + kw) * B);
        }
    }
    return acc;
}

// NP outputs from ow of a 3x3 window with stride SW, dilation 1, every tap inside the input rows
// r[kh] (null: a row outside the image): each input vector of a row is loaded once and meets the
// taps that use it.
template <int SW, int NP>
MNN_ALWAYS_INLINE void dw3_pixels_rows(const DirectConv& d, const float* const* r, const float* w, int64_t ow,
                                       float* y) {
    V acc[NP];
    MNN_UNROLL
    for (int j = 0; j < NP; ++j) acc[j] = V{};
    for (int kh = 0; kh < 3; ++kh) {
        if (!r[kh]) continue;
        const float* xr = r[kh] + (ow * SW - d.pl) * B;
        const V wv[3] = {vload(w + (kh * 3) * B), vload(w + (kh * 3 + 1) * B), vload(w + (kh * 3 + 2) * B)};
        MNN_UNROLL
        for (int i = 0; i < SW * (NP - 1) + 3; ++i) {
            const V xv = vload(xr + i * B);
            MNN_UNROLL
            for (int j = 0; j < NP; ++j) {
                const int kw = i - SW * j;
                if (kw >= 0 && kw < 3) acc[j] += xv * wv[kw];
            }
        }
    }
    MNN_UNROLL
    for (int j = 0; j < NP; ++j) vstore(y + (ow + j) * B, acc[j]);
}

template <int NP>
MNN_ALWAYS_INLINE void dw_range_t(const Args& a, int64_t t0, int64_t t1) {
    const DirectConv& d = a.d;
    const int64_t Cb = channel_blocks(d.C), T = d.kh * d.kw, P = d.OH * d.OW;
    const int64_t row_tasks = (d.OH + kRowsPerTask - 1) / kRowsPerTask;
    // Outputs whose taps all lie inside the row: ow in [ow_a, ow_b).
    const int64_t ow_a = std::min(d.OW, (d.pl + d.sw - 1) / d.sw);
    const int64_t last = d.W - 1 - (d.kw - 1) * d.dw + d.pl;  // the largest ow * sw allowed
    const int64_t ow_b = std::max(ow_a, last < 0 ? 0 : std::min(d.OW, last / d.sw + 1));
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / (Cb * row_tasks), r = t / Cb % row_tasks, cb = t % Cb;  // (rows outermost)
        const float* x = a.x + (n * Cb + cb) * d.H * d.W * B;
        const float* w = a.w + cb * T * B;
        for (int64_t oh = r * kRowsPerTask; oh < std::min(d.OH, (r + 1) * kRowsPerTask); ++oh) {
            float* y = a.y + ((n * Cb + cb) * P + oh * d.OW) * B;
            for (int64_t ow = 0; ow < ow_a; ++ow) vstore(y + ow * B, dw_one(d, x, w, oh, ow));
            int64_t ow = ow_a;
            if (d.kh == 3 && d.kw == 3 && d.dh == 1 && d.dw == 1 && (d.sw == 1 || d.sw == 2)) {
                const float* r[3];
                for (int kh = 0; kh < 3; ++kh) {
                    const int64_t ih = oh * d.sh - d.pt + kh;
                    r[kh] = ih >= 0 && ih < d.H ? x + ih * d.W * B : nullptr;
                }
                if (d.sw == 1)
                    for (; ow + NP <= ow_b; ow += NP) dw3_pixels_rows<1, NP>(d, r, w, ow, y);
                else
                    for (; ow + NP <= ow_b; ow += NP) dw3_pixels_rows<2, NP>(d, r, w, ow, y);
            }
            for (; ow + 4 <= ow_b; ow += 4) {
                V acc[4] = {V{}, V{}, V{}, V{}};
                for (int64_t kh = 0; kh < d.kh; ++kh) {
                    const int64_t ih = oh * d.sh - d.pt + kh * d.dh;
                    if (ih < 0 || ih >= d.H) continue;
                    const float* xr = x + (ih * d.W + ow * d.sw - d.pl) * B;
                    for (int64_t kw = 0; kw < d.kw; ++kw) {
                        const V wv = vload(w + (kh * d.kw + kw) * B);
                        const float* xk = xr + kw * d.dw * B;
                        MNN_UNROLL
                        for (int j = 0; j < 4; ++j) acc[j] += vload(xk + j * d.sw * B) * wv;
                    }
                }
                MNN_UNROLL
                for (int j = 0; j < 4; ++j) vstore(y + (ow + j) * B, acc[j]);
            }
            for (; ow < d.OW; ++ow) vstore(y + ow * B, dw_one(d, x, w, oh, ow));
            if (a.e) blocked_epilogue(a.be, n, cb, Cb, oh * d.OW, y, d.OW);
        }
    }
}
// (8 outputs in flight with AVX-512, 4 in the other variants, whose vectors take 2 or 4 registers)
#define MNN_DW_CALL(L) dw_range_t<(L) == 16 ? 8 : 4>(a, t0, t1)
MNN_ISA_VARIANTS_LANES(dw_range, (const Args& a, int64_t t0, int64_t t1), MNN_DW_CALL, 16, 8, 4)
#undef MNN_DW_CALL

// ---- dense (a stem): broadcast input values against two output blocks, four pixels at a time ----

template <bool BIN>
MNN_ALWAYS_INLINE const float* dense_row_ptr(const DirectConv& d, const float* xn, int64_t c, int64_t ih) {
    return BIN ? xn + (((c / B) * d.H + ih) * d.W) * B + c % B : xn + (c * d.H + ih) * d.W;
}

// NP pixels from ow (all taps inside the row when CHECK is false) x NB output blocks.
template <bool BIN, int NP, int NB, bool CHECK>
MNN_ALWAYS_INLINE void dense_pixels(const DirectConv& d, const float* xn, const float* w, int64_t wstride, int64_t oh,
                                    int64_t ow, float* y, int64_t ystride) {
    constexpr int64_t xs = BIN ? B : 1;
    V acc[NP][NB];
    MNN_UNROLL
    for (int j = 0; j < NP; ++j)
        MNN_UNROLL
        for (int b = 0; b < NB; ++b) acc[j][b] = V{};
    for (int64_t c = 0; c < d.C; ++c)
        for (int64_t kh = 0; kh < d.kh; ++kh) {
            const int64_t ih = oh * d.sh - d.pt + kh * d.dh;
            if (ih < 0 || ih >= d.H) continue;
            const float* xr = dense_row_ptr<BIN>(d, xn, c, ih);
            for (int64_t kw = 0; kw < d.kw; ++kw) {
                V wv[NB];
                MNN_UNROLL
                for (int b = 0; b < NB; ++b) wv[b] = vload(w + b * wstride + ((c * d.kh + kh) * d.kw + kw) * B);
                MNN_UNROLL
                for (int j = 0; j < NP; ++j) {
                    const int64_t iw = (ow + j) * d.sw - d.pl + kw * d.dw;
                    if (CHECK && (iw < 0 || iw >= d.W)) continue;
                    const float s = xr[iw * xs];
                    MNN_UNROLL
                    for (int b = 0; b < NB; ++b) acc[j][b] += s * wv[b];
                }
            }
        }
    MNN_UNROLL
    for (int b = 0; b < NB; ++b)
        MNN_UNROLL
        for (int j = 0; j < NP; ++j) vstore(y + b * ystride + (ow + j) * B, acc[j][b]);
}

template <bool BIN, int NB>
MNN_ALWAYS_INLINE void dense_row(const DirectConv& d, const float* xn, const float* w, int64_t wstride, int64_t oh,
                                 float* y, int64_t ystride) {
    const int64_t ow_a = std::min(d.OW, (d.pl + d.sw - 1) / d.sw);
    const int64_t last = d.W - 1 - (d.kw - 1) * d.dw + d.pl;
    const int64_t ow_b = std::max(ow_a, last < 0 ? 0 : std::min(d.OW, last / d.sw + 1));
    int64_t ow = 0;
    for (; ow < ow_a; ++ow) dense_pixels<BIN, 1, NB, true>(d, xn, w, wstride, oh, ow, y, ystride);
    for (; ow + 4 <= ow_b; ow += 4) dense_pixels<BIN, 4, NB, false>(d, xn, w, wstride, oh, ow, y, ystride);
    for (; ow < d.OW; ++ow) dense_pixels<BIN, 1, NB, true>(d, xn, w, wstride, oh, ow, y, ystride);
}

template <bool BIN>
MNN_ALWAYS_INLINE void dense_range_t(const Args& a, int64_t t0, int64_t t1) {
    const DirectConv& d = a.d;
    const int64_t Ob = channel_blocks(d.O), P = d.OH * d.OW, groups = (Ob + 1) / 2;
    const int64_t row_tasks = (d.OH + kRowsPerTask - 1) / kRowsPerTask;
    const int64_t xn_stride = BIN ? channel_blocks(d.C) * B * d.H * d.W : d.C * d.H * d.W;
    const int64_t wstride = a.rows * B;
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / (groups * row_tasks), r = t / groups % row_tasks, g = t % groups;  // (rows outermost)
        const int64_t ob = g * 2, nb = std::min<int64_t>(2, Ob - ob);
        const float* xn = a.x + n * xn_stride;
        const float* w = a.w + ob * wstride;
        for (int64_t oh = r * kRowsPerTask; oh < std::min(d.OH, (r + 1) * kRowsPerTask); ++oh) {
            float* y = a.y + ((n * Ob + ob) * P + oh * d.OW) * B;
            if (nb == 2) dense_row<BIN, 2>(d, xn, w, wstride, oh, y, P * B);
            else dense_row<BIN, 1>(d, xn, w, wstride, oh, y, P * B);
            if (a.e)
                for (int64_t b = 0; b < nb; ++b) blocked_epilogue(a.be, n, ob + b, Ob, oh * d.OW, y + b * P * B, d.OW);
        }
    }
}
MNN_ISA_VARIANTS(dense_range, (const Args& a, int64_t t0, int64_t t1),
                 a.blocked_in ? dense_range_t<true>(a, t0, t1) : dense_range_t<false>(a, t0, t1))

// ---- a 1x1 convolution expanding rows into a ring, and a 3x3 depthwise one reading them -----------

// One output vector of the 3x3 depthwise at column ow from the rows r[kh] (null: outside the image).
MNN_ALWAYS_INLINE V dw3_one_rows(const DirectConv& d, const float* const* r, const float* w, int64_t ow) {
    V acc = V{};
    for (int kh = 0; kh < 3; ++kh) {
        if (!r[kh]) continue;
        for (int kw = 0; kw < 3; ++kw) {
            const int64_t iw = ow * d.sw - d.pl + kw;
            if (iw >= 0 && iw < d.W) acc += vload(r[kh] + iw * B) * vload(w + (kh * 3 + kw) * B);
        }
    }
    return acc;
}

struct FuseArgs {
    Args p, d;      // the 1x1 (x, packed weights, epilogue) and the depthwise (packed weights, y, epilogue)
    int64_t bands;  // output-row bands per image (one task each)
};

thread_local simd::Scratch t_ring;

template <int PX, int OB, int NP, bool BIN>
MNN_ALWAYS_INLINE void fuse_range_t(const FuseArgs& f, int64_t t0, int64_t t1) {
    const DirectConv& P = f.p.d;
    const DirectConv& D = f.d.d;
    const int64_t H = D.H, W = D.W, OH = D.OH, OW = D.OW, Eb = channel_blocks(D.C), row = Eb * W * B;
    const int64_t plane = P.H * P.W, xn = BIN ? channel_blocks(P.C) * B * plane : P.C * plane;
    const int64_t wstride = f.p.rows * B;
    float* ring = t_ring.get<float>(size_t(3 * row));
    const int64_t ow_a = std::min(OW, (D.pl + D.sw - 1) / D.sw);
    const int64_t last = W - 1 - 2 + D.pl;
    const int64_t ow_b = std::max(ow_a, last < 0 ? 0 : std::min(OW, last / D.sw + 1));
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / f.bands, b = t % f.bands;
        const int64_t oh0 = b * OH / f.bands, oh1 = (b + 1) * OH / f.bands;
        int64_t have = -1;  // expanded rows up to `have` are in the ring (row ih at ring + ih % 3 * row)
        for (int64_t oh = oh0; oh < oh1; ++oh) {
            const int64_t top = oh * D.sh - D.pt, lo = std::max<int64_t>(0, top), hi = std::min(H, top + 3);
            if (have < lo - 1) have = lo - 1;
            for (; have + 1 < hi; ++have) {  // expand input row have + 1 into the ring
                const int64_t ih = have + 1;
                float* dst = ring + ih % 3 * row;
                const float* x = f.p.x + n * xn + (BIN ? ih * W * B : ih * W);
                for (int64_t ob = 0; ob < Eb; ob += OB) {
                    const int64_t nb = std::min<int64_t>(OB, Eb - ob);
                    for (int64_t p = 0; p < W; p += PX) {
                        const int64_t px = std::min<int64_t>(PX, W - p);
                        const float* xp = x + (BIN ? p * B : p);
                        float* yp = dst + ob * W * B + p * B;
                        if (nb == OB) pw_tile_n<PX, OB, BIN>(px, xp, plane, P.C, f.p.w + ob * wstride, wstride, yp, W * B);
                        else
                            for (int64_t j = 0; j < nb; ++j)
                                pw_tile_n<PX, 1, BIN>(px, xp, plane, P.C, f.p.w + (ob + j) * wstride, wstride,
                                                      yp + j * W * B, W * B);
                    }
                    for (int64_t j = 0; j < nb; ++j)
                        blocked_epilogue(f.p.be, n, ob + j, Eb, ih * W, dst + (ob + j) * W * B, W);
                }
            }
            const float* rows[3];
            for (int kh = 0; kh < 3; ++kh) {
                const int64_t ih = top + kh;
                rows[kh] = ih >= 0 && ih < H ? ring + ih % 3 * row : nullptr;
            }
            for (int64_t cb = 0; cb < Eb; ++cb) {
                const float* r[3] = {rows[0] ? rows[0] + cb * W * B : nullptr, rows[1] ? rows[1] + cb * W * B : nullptr,
                                     rows[2] ? rows[2] + cb * W * B : nullptr};
                const float* w = f.d.w + cb * 9 * B;
                float* y = f.d.y + ((n * Eb + cb) * OH + oh) * OW * B;
                int64_t ow = 0;
                for (; ow < ow_a; ++ow) vstore(y + ow * B, dw3_one_rows(D, r, w, ow));
                if (D.sw == 1)
                    for (; ow + NP <= ow_b; ow += NP) dw3_pixels_rows<1, NP>(D, r, w, ow, y);
                else
                    for (; ow + NP <= ow_b; ow += NP) dw3_pixels_rows<2, NP>(D, r, w, ow, y);
                for (; ow < OW; ++ow) vstore(y + ow * B, dw3_one_rows(D, r, w, ow));
                blocked_epilogue(f.d.be, n, cb, Eb, oh * OW, y, OW);
            }
        }
    }
}
#define MNN_FUSE_CALL(L)                                                                  \
    (f.p.blocked_in ? fuse_range_t<pw_px(L), pw_ob(L), (L) == 16 ? 8 : 4, true>(f, t0, t1) \
                    : fuse_range_t<pw_px(L), pw_ob(L), (L) == 16 ? 8 : 4, false>(f, t0, t1))
MNN_ISA_VARIANTS_LANES(fuse_range, (const FuseArgs& f, int64_t t0, int64_t t1), MNN_FUSE_CALL, 16, 8, 4)
#undef MNN_FUSE_CALL

// ---- reorders (at the ends of a chain where a kernel needs the other layout) ---------------------

void nchw_to_blocked(const float* x, float* xb, int64_t N, int64_t C, int64_t P) {
    const int64_t Cb = channel_blocks(C);
    parallel_for(N * Cb, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t n = t / Cb, cb = t % Cb, valid = std::min<int64_t>(B, C - cb * B);
            const float* src = x + (n * C + cb * B) * P;
            float* dst = xb + t * P * B;
            for (int64_t p = 0; p < P; ++p)
                for (int64_t l = 0; l < B; ++l) dst[p * B + l] = l < valid ? src[l * P + p] : 0.f;
        }
    });
}

void blocked_to_nchw(const float* xb, float* x, int64_t N, int64_t C, int64_t P) {
    const int64_t Cb = channel_blocks(C);
    parallel_for(N * C, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t n = t / C, c = t % C;
            const float* src = xb + ((n * Cb + c / B) * P) * B + c % B;
            float* dst = x + t * P;
            for (int64_t p = 0; p < P; ++p) dst[p] = src[p * B];
        }
    });
}

}  // namespace

void conv2d_blocked(const DirectConv& d, const Tensor& xt, const Tensor& wt, const EpiRt<float>& e, Tensor& yt) {
    const BlockedConv kind = blocked_conv_kind(d);
    MNN_CHECK_VALUE(kind != BlockedConv::None && xt.dtype() == DType::Float32,
                    "conv2d: no channel-blocked kernel for this convolution (internal error)");
    for (int k = 0; k < e.n_ops; ++k)
        MNN_CHECK_VALUE(e.ops[k].operand != EpilogueOp::Channel,
                        "conv2d: a per-channel epilogue operand on a channel-blocked convolution (internal error)");
    if (yt.numel() == 0) return;
    const std::shared_ptr<const BlockedWeights> pw = packed_weights(d, kind, wt);
    const int64_t P = d.OH * d.OW, Ob = channel_blocks(d.O);
    Args a{d, xt.ndim() == 5, xt.data<float>(), pw->w.data(), pw->rows, nullptr, nullptr};
    std::unique_ptr<float[]> xs, ys;
    if (kind == BlockedConv::Depthwise && !a.blocked_in) {  // depthwise reads blocked only
        xs.reset(new float[size_t(d.N * channel_blocks(d.C) * d.H * d.W * B)]);
        nchw_to_blocked(a.x, xs.get(), d.N, d.C, d.H * d.W);
        a.x = xs.get();
        a.blocked_in = true;
    }
    const bool blocked_out = yt.ndim() == 5;
    if (blocked_out) {
        a.y = yt.data<float>();
        a.e = &e;
    } else if (kind == BlockedConv::Pointwise) {
        a.y_nchw = yt.data<float>();
        a.e = &e;
        for (int k = 0; k < e.n_ops; ++k) a.full_operands |= e.ops[k].operand == EpilogueOp::Full;
    } else {  // raw sums in blocked order, then reordered; the epilogue runs on the NCHW output
        ys.reset(new float[size_t(d.N * Ob * P * B)]);
        a.y = ys.get();
    }
    const CpuLevel level = active_level();
    a.be = blocked_epi(a.e, level);
    switch (kind) {
        case BlockedConv::Pointwise: {
            const auto run = pw_range_for(level);
            const int64_t tasks = pw_tasks(a, level);
            parallel_for_ranges(tasks, [&](int64_t t0, int64_t t1) { run(a, t0, t1); });
            break;
        }
        case BlockedConv::Depthwise: {
            const auto run = dw_range_for(level);
            const int64_t tasks = d.N * channel_blocks(d.C) * ((d.OH + kRowsPerTask - 1) / kRowsPerTask);
            parallel_for_ranges(tasks, [&](int64_t t0, int64_t t1) { run(a, t0, t1); });
            break;
        }
        case BlockedConv::Dense: {
            const auto run = dense_range_for(level);
            const int64_t tasks = d.N * ((Ob + 1) / 2) * ((d.OH + kRowsPerTask - 1) / kRowsPerTask);
            parallel_for_ranges(tasks, [&](int64_t t0, int64_t t1) { run(a, t0, t1); });
            break;
        }
        case BlockedConv::None: break;
    }
    if (!blocked_out && !a.y_nchw) {
        float* y = yt.data<float>();
        blocked_to_nchw(a.y, y, d.N, d.O, P);
        parallel_for(d.N * d.O, 1, [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t)
                epilogue_block<float, B>(e, t / d.O, t % d.O, 1, 0, y + t * P, P, P);
        });
    }
}

bool expand_depthwise_suits(const DirectConv& p, const DirectConv& d) {
    // Rows of at least kFuseMinWidth pixels: the 1x1 then runs whole tiles on one row, and the
    // expanded tensor is large enough (>= 28x28) that keeping it out of memory pays; on 14x14 and
    // 7x7 planes the separate steps were faster (MobileNetV2: 0.13 vs 0.12 ms, 0.127 vs 0.086).
    constexpr int64_t kFuseMinWidth = 28;
    return d.W >= kFuseMinWidth && blocked_conv_kind(p) == BlockedConv::Pointwise && blocked_conv_kind(d) == BlockedConv::Depthwise &&
           d.kh == 3 && d.kw == 3 && d.dh == 1 && d.dw == 1 && (d.sh == 1 || d.sh == 2) && d.sw == d.sh &&
           d.pt <= 1 && d.pl <= 1 && p.N == d.N && p.O == d.C && p.OH == d.H && p.OW == d.W;
}

void conv2d_expand_depthwise(const DirectConv& p, const Tensor& xt, const Tensor& pwt, const EpiRt<float>& pe,
                             const DirectConv& d, const Tensor& dwt, const EpiRt<float>& de, Tensor& yt) {
    MNN_CHECK_VALUE(expand_depthwise_suits(p, d) && yt.ndim() == 5 && xt.dtype() == DType::Float32,
                    "conv2d: 1x1 + depthwise fusion does not apply (internal error)");
    for (const EpiRt<float>* e : {&pe, &de})
        for (int k = 0; k < e->n_ops; ++k)
            MNN_CHECK_VALUE(e->ops[k].operand != EpilogueOp::Channel && e->ops[k].operand != EpilogueOp::Full,
                            "conv2d: an operand per channel or element in a fused 1x1 + depthwise (internal error)");
    if (yt.numel() == 0) return;
    const auto ppk = packed_weights(p, BlockedConv::Pointwise, pwt);
    const auto dpk = packed_weights(d, BlockedConv::Depthwise, dwt);
    FuseArgs f{Args{p, xt.ndim() == 5, xt.data<float>(), ppk->w.data(), ppk->rows, nullptr, &pe},
               Args{d, true, nullptr, dpk->w.data(), dpk->rows, yt.data<float>(), &de}, 1};
    // (bands of >= 4 output rows: each re-expands the 1 or 2 input rows it shares with the next)
    f.bands = std::min<int64_t>(get_thread_number(), std::max<int64_t>(1, d.OH / 4));
    const CpuLevel level = active_level();
    f.p.be = blocked_epi(&pe, level);
    f.d.be = blocked_epi(&de, level);
    const auto run = fuse_range_for(level);
    parallel_for_ranges(d.N * f.bands, [&](int64_t t0, int64_t t1) { run(f, t0, t1); });
}

}  // namespace convgeom

bool blocked_layout_pays() {
    if (active_level() == CpuLevel::Avx512) return true;
    const char* all = std::getenv("MNN_LAYOUT_ALL_LEVELS");
    return all && std::strcmp(all, "0") != 0 && *all;
}

TensorInfo blocked_info(const TensorInfo& nchw) {
    const Shape& s = nchw.shape;
    return TensorInfo{nchw.dtype, {s[0], convgeom::channel_blocks(s[1]), s[2], s[3], convgeom::kChannelBlock}};
}

}  // namespace mnn
