// Convolution as an implicit GEMM: y_g[Og, P] = W_g[Og, K] @ unfold(x_g)[K, P],
// K = C/G * kh * kw, without ever storing the unfolded input.
//
// - A (the weights) is packed into the GEMM's MR-row panels once per weight
//   tensor and cached (the cache entry holds a weak reference to the weight's
//   storage, so it is used only while that very tensor lives, and never for
//   bytes that may be rewritten: borrowed ones, a lazy plan's arena; Storage::rewritable).
// - B is read from zero-padded phase planes of the input (conv_planes.h), in
//   the "wide" layout q = oh * Wp + ow: row k = (c, i, j) of an NR-column B
//   panel is the contiguous run planes[c][phase] + tap_off + q0, so packing a
//   panel is one short copy per k.
// - Each task computes a block of output channels for one panel of positions
//   with the per-ISA GEMM macro-kernel into a thread-local tile (or straight
//   into y when the wide layout is the real one), then writes the tile's real
//   columns through the epilogue (bias, fused ops) while it is in L1.  On AVX-512 float,
//   a chain with a register form (conv_regepi.h: bias, ReLU, ReLU6 / clip, residual) is one
//   pass over the just-stored rows; others go through the kernel's store program or
//   epilogue_block.
#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <type_traits>
#include <new>
#include <unordered_map>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "ops/conv_epilogue.h"
#include "ops/conv_planes.h"
#include "ops/conv_regepi.h"
#include "ops/conv_weight_cache.h"
#include "ops/gemm_kernels.h"
#include "ops/isa_variants.h"
#include "ops/simd_span.h"

namespace mnn {

template <typename T> const gemmk::KernelSet<T>& gemm_kernel_set(CpuLevel level);  // gemm.cc

namespace convgeom {
namespace {

// 64-byte aligned per-thread scratch that only grows.
using simd::Scratch;
thread_local Scratch t_planes, t_bpanel, t_apack;

// ---- packed weights ---------------------------------------------------------------------------

struct Packed : WeightEntry {
    int64_t groups = 0;
    CpuLevel level = CpuLevel::Generic;
    DType dtype = DType::Float32;
    bool as_b = false;  // packed as the GEMM's B operand (NR-column panels of output channels), else as A
    int64_t M = 0, K = 0, mr = 0, kc_max = 0, nk = 0, mpad = 0;  // (as B: mr = NR, mpad = channels rounded to NR)
    void* data = nullptr;  // groups * mpad * K values: group g at g * mpad * K, depth block p at pc * mpad
    ~Packed() {
        if (data) ::operator delete(data, std::align_val_t(64));
    }
};

WeightCache<Packed>& pack_cache() {
    static auto* c = new WeightCache<Packed>();  // (never destroyed: used from pool threads at exit)
    return *c;
}

template <typename T>
std::shared_ptr<const Packed> packed_weights(const Tensor& w, int64_t G, const gemmk::KernelSet<T>& ks, CpuLevel level,
                                            bool as_b) {
    if (auto hit = pack_cache().find(w, [&](const Packed& p) {
            return p.groups == G && p.level == level && p.dtype == w.dtype() && p.as_b == as_b;
        }))
        return hit;
    auto p = std::make_shared<Packed>();
    p->set_source(w);
    p->groups = G;
    p->level = level;
    p->dtype = w.dtype();
    const int64_t O = w.shape()[0];
    p->M = O / G;
    p->K = w.numel() / std::max<int64_t>(O, 1);
    p->as_b = as_b;
    p->mr = as_b ? ks.nr : ks.mr;
    p->nk = (p->K + ks.kc - 1) / ks.kc;
    p->kc_max = (p->K + p->nk - 1) / p->nk;
    p->mpad = (p->M + p->mr - 1) / p->mr * p->mr;
    p->bytes = size_t(G * p->mpad * p->K) * sizeof(T);
    p->data = ::operator new(std::max<size_t>(p->bytes, 64), std::align_val_t(64));
    const T* wd = w.data<T>();
    T* dst = static_cast<T*>(p->data);
    const int64_t nk = p->nk, M = p->M, K = p->K, kc_max = p->kc_max, mpad = p->mpad;
    parallel_for(G * nk, 1, [&](int64_t a, int64_t b) {
        for (int64_t t = a; t < b; ++t) {
            const int64_t g = t / nk, pc = (t % nk) * kc_max, kc = std::min(kc_max, K - pc);
            // As A: W_g[M, K] in MR-row panels; as B: op(B) = W_g^T [K, M] in NR-column panels.
            if (as_b) ks.pack_b(true, wd + g * M * K + pc, K, kc, M, dst + g * mpad * K + pc * mpad);
            else ks.pack_a(false, wd + g * M * K + pc, K, M, kc, dst + g * mpad * K + pc * mpad);
        }
    });
    pack_cache().insert(w, p);
    return p;
}

// ---- one task: output channels [i0, i1) of group g at wide positions [j0, j0 + NR) ----------------

template <typename T>
struct Job {
    const gemmk::KernelSet<T>* ks;
    const DirectConv* d;
    const Planes* pl;
    const T* A;           // packed weights (group 0)
    const T* planes;      // this image's planes (group 0's first channel)
    const int64_t* koff;  // per k, offset of its B row from the group's first plane
    const EpiRt<T>* epi;
    T* y;                 // this image's output
    int64_t n;            // image index (epilogue operands)
    int64_t M, K, kc_max, nk, mpad, Cg;
    bool same = false;    // reading the input itself with zero padding by masks (pack_panel_same)
#if defined(MNN_SPAN_MASKS)
    // AVX-512 float with a chain that has a register form (conv_regepi.h): the tile's rows are
    // stored, then finished in one pass while in L1 (else the kernel's store program / epilogue_block)
    void (*reg_rows)(const RegRowsArgs&) = nullptr;
    const RegPlan* reg_plan = nullptr;
#endif
};

// A panel's output positions [j0, j0 + n) as runs of consecutive wide positions (one per output
// row, merged when rows are contiguous in the planes, as for a 1x1 stride-1 layer).
struct Runs {
    int64_t q[64], col[64], len[64];  // wide position, column in the panel, length
    int n = 0;
};

inline void panel_runs(const DirectConv& d, const Planes& pl, int64_t j0, int64_t n, Runs& r) {
    r.n = 0;
    for (int64_t j = j0; j < j0 + n;) {
        const int64_t oh = j / d.OW, ow = j - oh * d.OW, len = std::min(d.OW - ow, j0 + n - j);
        const int64_t q = oh * pl.Wp + ow;
        if (r.n > 0 && r.q[r.n - 1] + r.len[r.n - 1] == q) {
            r.len[r.n - 1] += len;
        } else {
            r.q[r.n] = q;
            r.col[r.n] = j - j0;
            r.len[r.n] = len;
            ++r.n;
        }
        j += len;
    }
}

// B panel for depth rows [k0, k0 + kc): row k holds the panel's positions, gathered run by run
// from base + koff[k]; columns past n are zero.
template <typename T, int L, int NR>
MNN_ALWAYS_INLINE void pack_panel_nr(const T* base, const int64_t* koff, int64_t kc, const Runs& r, int64_t n,
                                     T* dst) {
    if (r.n == 1 && n == NR) {
        const int64_t q = r.q[0];
        for (int64_t k = 0; k < kc; ++k) {
            const T* s = base + koff[k] + q;
            T* dk = dst + k * NR;
            for (int j = 0; j < NR; ++j) dk[j] = s[j];
        }
        return;
    }
    for (int64_t k = 0; k < kc; ++k) {
        const T* s = base + koff[k];
        T* dk = dst + k * NR;
        for (int i = 0; i < r.n; ++i) simd::copy<T, L>(dk + r.col[i], s + r.q[i], r.len[i]);
        if (n < NR) simd::zero<T, L>(dk + n, NR - n);
    }
}

#if defined(MNN_SPAN_MASKS)
// AVX-512, float, 32-column panels: each of the panel's two vectors reads one unaligned run
// from the planes, and where it crosses into the next output row, the lanes past the boundary
// come from a second, masked load (lane l at b + l) - two or three loads per depth row instead
// of a copy loop per run.  Needs rows at least 16 wide and 16 values of slack after the planes.
struct PanelVecs {
    int64_t a[2], b[2];
    uint32_t mask[2];  // lanes taken from b
    uint32_t valid[2];  // lanes inside the panel (the rest are zero)
};

// False when a vector crosses more than one row boundary (rows narrower than 16).
inline bool panel_vecs(const Runs& r, int64_t n, PanelVecs& v) {
    for (int h = 0; h < 2; ++h) {
        const int64_t c0 = 16 * h, c1 = std::min<int64_t>(n, c0 + 16);
        v.valid[h] = c1 > c0 ? uint32_t((1u << (c1 - c0)) - 1u) : 0u;
        v.mask[h] = 0;
        v.a[h] = v.b[h] = 0;
        if (c1 <= c0) continue;
        int first = -1, second = -1;
        for (int i = 0; i < r.n; ++i)
            if (r.col[i] < c1 && r.col[i] + r.len[i] > c0) {
                if (first < 0) first = i;
                else if (second < 0) second = i;
                else return false;
            }
        v.a[h] = r.q[first] + (c0 - r.col[first]);
        if (second >= 0) {
            v.b[h] = r.q[second] - (r.col[second] - c0);  // lane l of the vector at b + l
            v.mask[h] = v.valid[h] & ~uint32_t((1u << (r.col[second] - c0)) - 1u);
        }
    }
    return true;
}

MNN_ISA_AVX512 inline void pack_panel_vecs(const float* base, const int64_t* koff, int64_t kc, const PanelVecs& v,
                                           float* dst) {
    const __mmask16 v0 = __mmask16(v.valid[0]), v1 = __mmask16(v.valid[1]);
    const __mmask16 m0 = __mmask16(v.mask[0]), m1 = __mmask16(v.mask[1]);
    for (int64_t k = 0; k < kc; ++k) {
        const float* s = base + koff[k];
        __m512 x0 = _mm512_maskz_loadu_ps(__mmask16(v0 & ~m0), s + v.a[0]);
        __m512 x1 = _mm512_maskz_loadu_ps(__mmask16(v1 & ~m1), s + v.a[1]);
        x0 = _mm512_mask_loadu_ps(x0, m0, s + v.b[0]);
        x1 = _mm512_mask_loadu_ps(x1, m1, s + v.b[1]);
        _mm512_store_ps(dst + k * 32, x0);
        _mm512_store_ps(dst + k * 32 + 16, x1);
    }
}

// Stride 1 with as many output as input columns (3x3 pad 1): the input itself is the plane
// (koff[k] = c*H*W + (i*dh - pt)*W + j*dw - pl), output position q reads base + koff[k] + q, and
// the taps that fall into the padding are masked off per vector: no padded copy of the input.
// mask[t][v]: lanes of vector v of the panel valid for tap t.
inline void same_masks(const DirectConv& d, int64_t j0, int64_t n, uint32_t (*mask)[2]) {
    const int64_t P = d.OH * d.OW, taps = d.kh * d.kw;
    for (int64_t t = 0; t < taps; ++t) mask[t][0] = mask[t][1] = 0;
    int64_t oh = j0 / d.OW, ow = j0 - oh * d.OW;
    for (int64_t l = 0; l < n && j0 + l < P; ++l) {
        for (int64_t i = 0; i < d.kh; ++i) {
            const int64_t ih = oh + i * d.dh - d.pt;
            if (ih < 0 || ih >= d.H) continue;
            for (int64_t j = 0; j < d.kw; ++j) {
                const int64_t iw = ow + j * d.dw - d.pl;
                if (iw >= 0 && iw < d.W) mask[i * d.kw + j][l >> 4] |= 1u << (l & 15);
            }
        }
        if (++ow == d.OW) {
            ow = 0;
            ++oh;
        }
    }
}

MNN_ISA_AVX512 inline void pack_panel_same(const float* base, const int64_t* koff, int64_t k0, int64_t kc,
                                           int64_t taps, const uint32_t (*mask)[2], int64_t q0, float* dst) {
    int64_t t = k0 % taps;
    for (int64_t k = 0; k < kc; ++k) {
        const float* s = base + koff[k0 + k] + q0;
        _mm512_store_ps(dst + k * 32, _mm512_maskz_loadu_ps(__mmask16(mask[t][0]), s));
        _mm512_store_ps(dst + k * 32 + 16, _mm512_maskz_loadu_ps(__mmask16(mask[t][1]), s + 16));
        if (++t == taps) t = 0;
    }
}
#endif

template <typename T, int L>
MNN_ALWAYS_INLINE void pack_panel(int nr, const T* base, const int64_t* koff, int64_t kc, const Runs& r, int64_t n,
                                  T* dst) {
    switch (nr) {
        case 32: return pack_panel_nr<T, L, 32>(base, koff, kc, r, n, dst);
        case 16: return pack_panel_nr<T, L, 16>(base, koff, kc, r, n, dst);
        case 8: return pack_panel_nr<T, L, 8>(base, koff, kc, r, n, dst);
        case 4: return pack_panel_nr<T, L, 4>(base, koff, kc, r, n, dst);
        default:
            for (int64_t k = 0; k < kc; ++k) {
                T* dk = dst + k * nr;
                for (int64_t j = 0; j < nr; ++j) dk[j] = T(0);
                for (int i = 0; i < r.n; ++i)
                    for (int64_t j = 0; j < r.len[i]; ++j) dk[r.col[i] + j] = base[koff[k] + r.q[i] + j];
            }
    }
}

// The epilogue as the GEMM kernel's store program (gemm_kernels.h) for a block whose first row is
// channel o of image n and first column position p: false when it has a step the program lacks.
template <typename T>
bool store_program(const EpiRt<T>& e, int64_t n, int64_t o, int64_t p, gemmk::StoreEpi<T>& s) {
    using SE = gemmk::StoreEpi<T>;
    s.n = 0;
    auto add = [&](typename SE::Op op, const T* ptr, int64_t ld, T c) {
        if (s.n == 6) return false;
        s.steps[s.n++] = {op, ptr, ld, c};
        return true;
    };
    if (e.bias && !add(SE::AddRow, e.bias + o, 0, T(0))) return false;
    for (int k = 0; k < e.n_ops; ++k) {
        const typename EpiRt<T>::Op& op = e.ops[k];
        bool ok = false;
        switch (op.kind) {
            case EpilogueOp::Relu: ok = add(SE::Relu, nullptr, 0, T(0)); break;
            case EpilogueOp::Add:  // (x + y == y + x bit for bit: the operand's side does not matter)
                if (op.operand == EpilogueOp::Channel) ok = add(SE::AddRow, op.ptr + o, 0, T(0));
                else if (op.operand == EpilogueOp::Full) ok = add(SE::AddFull, op.ptr + (n * e.O + o) * e.P + p, e.P, T(0));
                break;
            case EpilogueOp::Max:
                if (op.operand == EpilogueOp::Scalar) {
                    const T c = op.ptr[0];
                    if (epi_plain_operand(c)) ok = add(SE::MaxC, nullptr, 0, c);
                    else if (c == T(0) && !std::signbit(c)) ok = add(SE::MaxPZ, nullptr, 0, T(0));
                }
                break;
            case EpilogueOp::Min:
                if (op.operand == EpilogueOp::Scalar && epi_plain_operand(op.ptr[0]))
                    ok = add(SE::MinC, nullptr, 0, op.ptr[0]);
                break;
            default: break;
        }
        if (!ok) return false;
    }
    return true;
}

// Output channels [i0, i1) of group g at the output positions of panels [q0, q1) (nr each): the
// GEMM straight into y, then the epilogue on that block in place.  Several panels per task
// when the depth is small keep the block's rows long (fewer pages and passes per output row).
template <typename T, int L>
MNN_ALWAYS_INLINE void gemm_task(const Job<T>& jb, int64_t g, int64_t i0, int64_t i1, int64_t q0, int64_t q1) {
    const gemmk::KernelSet<T>& ks = *jb.ks;
    const DirectConv& d = *jb.d;
    const Planes& pl = *jb.pl;
    const int nr = ks.nr;
    const int64_t P = d.OH * d.OW, Og = jb.M;
    const int64_t j0 = q0 * nr, ncols = std::min<int64_t>(q1 * nr, P) - j0, rows = i1 - i0;
    if (ncols <= 0) return;
    const int64_t npanels = (ncols + nr - 1) / nr;
    const T* base = jb.planes + g * jb.Cg * (jb.same ? d.H * d.W : pl.S * pl.PL);
    const T* A = jb.A + g * jb.mpad * jb.K;
    T* yg = jb.y + g * Og * P;
    T* bpanels = t_bpanel.get<T>(size_t(jb.kc_max * nr * npanels));
    T* C = yg + i0 * P + j0;
    [[maybe_unused]] uint32_t same_mask[4][64][2];  // (same mode, float: per panel of the task, from the first depth block)
    for (int64_t p = 0; p < jb.nk; ++p) {
        const int64_t pc = p * jb.kc_max, kc = std::min(jb.kc_max, jb.K - pc);
        for (int64_t h = 0; h < npanels; ++h) {
            const int64_t jh = j0 + h * nr, n = std::min<int64_t>(nr, P - jh);
            T* bp = bpanels + h * kc * nr;
#if defined(MNN_SPAN_MASKS)
            if constexpr (std::is_same_v<T, float> && simd::masked<T, L>())
                if (jb.same) {
                    if (p == 0) same_masks(d, jh, n, same_mask[h]);
                    pack_panel_same(reinterpret_cast<const float*>(base), jb.koff, pc, kc, d.kh * d.kw, same_mask[h],
                                    jh, reinterpret_cast<float*>(bp));
                    continue;
                }
#endif
            Runs runs;
            panel_runs(d, pl, jh, n, runs);
#if defined(MNN_SPAN_MASKS)
            if constexpr (std::is_same_v<T, float> && simd::masked<T, L>()) {
                PanelVecs vecs;
                if (nr == 32 && runs.n > 1 && panel_vecs(runs, n, vecs)) {
                    pack_panel_vecs(reinterpret_cast<const float*>(base), jb.koff + pc, kc, vecs,
                                    reinterpret_cast<float*>(bp));
                    continue;
                }
            }
#endif
            pack_panel<T, L>(nr, base, jb.koff + pc, kc, runs, n, bp);
        }
        if (p + 1 < jb.nk) {
            ks.macro(rows, ncols, kc, A + pc * jb.mpad + i0 * kc, bpanels, C, P, T(1), p == 0 ? T(0) : T(1));
            continue;
        }
        // The last depth block a few register rows at a time, each finished by the epilogue while
        // its rows are still in L1.
#if defined(MNN_SPAN_MASKS)
        if constexpr (std::is_same_v<T, float>)
            if (jb.reg_rows) {
                const int64_t chunk = 2 * ks.mr;
                for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
                    const int64_t m = std::min(chunk, rows - r0);
                    ks.macro(m, ncols, kc, A + pc * jb.mpad + (i0 + r0) * kc, bpanels, C + r0 * P, P, T(1),
                             p == 0 ? T(0) : T(1));
                    jb.reg_rows(
                        RegRowsArgs{jb.epi, jb.reg_plan, jb.n, g * Og + i0 + r0, j0, m, ncols, P, C + r0 * P});
                }
                continue;
            }
#endif
        gemmk::StoreEpi<T> prog;
        if (ks.macro_epi && store_program(*jb.epi, jb.n, g * Og + i0, j0, prog)) {  // finished in registers
            ks.macro_epi(rows, ncols, kc, A + pc * jb.mpad + i0 * kc, bpanels, C, P, p == 0 ? T(0) : T(1), &prog);
            continue;
        }
        const int64_t chunk = 2 * ks.mr;
        for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
            const int64_t m = std::min(chunk, rows - r0);
            ks.macro(m, ncols, kc, A + pc * jb.mpad + (i0 + r0) * kc, bpanels, C + r0 * P, P, T(1),
                     p == 0 ? T(0) : T(1));
            epilogue_block<T, L>(*jb.epi, jb.n, g * Og + i0 + r0, m, j0, C + r0 * P, P, ncols);
        }
    }
}

// ---- the transposed product for layers with few output positions -----------------------------------
// y_g^T[P, Og] = unfold(x_g)^T[P, K] @ W_g^T[K, Og]: positions are the GEMM's rows (MR-row panels,
// so 7x7 = 49 positions fill 56 rows where 32-column panels would compute 64), output channels its
// columns (the weights packed once as NR-column B panels, each read once per call), and the tile
// is transposed into y before the epilogue.

template <typename T>
struct JobT {
    const gemmk::KernelSet<T>* ks;
    const DirectConv* d;
    const Planes* pl;
    const T* B;           // weights packed as B (group 0)
    T* A;                 // this image's positions packed as A, per group ppad * K
    const T* planes;      // this image's planes
    const int64_t* koff;
    const EpiRt<T>* epi;
    T* y;                 // this image's output
    int64_t n;
    int64_t M, K, kc_max, nk, npad, ppad, Cg, chunk;
    int64_t pos_blocks;  // tasks split the positions into this many blocks of whole MR panels
};

// A panel i (positions [i*MR, i*MR + MR)) of group g, every depth block.
template <typename T, int L>
MNN_ALWAYS_INLINE void pack_positions(const JobT<T>& jb, int64_t g, int64_t i) {
    const DirectConv& d = *jb.d;
    const Planes& pl = *jb.pl;
    const int64_t MR = jb.ks->mr, P = d.OH * d.OW, p0 = i * MR, m = std::min<int64_t>(MR, P - p0);
    Runs r;
    panel_runs(d, pl, p0, m, r);
    const T* base = jb.planes + g * jb.Cg * pl.S * pl.PL;
    T* Ag = jb.A + g * jb.ppad * jb.K;
    for (int64_t p = 0; p < jb.nk; ++p) {
        const int64_t pc = p * jb.kc_max, kc = std::min(jb.kc_max, jb.K - pc);
        T* dst = Ag + pc * jb.ppad + p0 * kc;
        for (int64_t k = 0; k < kc; ++k) {
            const T* s = base + jb.koff[pc + k];
            T* dk = dst + k * MR;
            for (int j = 0; j < r.n; ++j) simd::copy<T, L>(dk + r.col[j], s + r.q[j], r.len[j]);
            for (int64_t j = m; j < MR; ++j) dk[j] = T(0);
        }
    }
}

// Output channels [c * chunk * NR, ...) of group g at the positions of block pb.
template <typename T, int L>
MNN_ALWAYS_INLINE void gemm_t_task(const JobT<T>& jb, int64_t g, int64_t c, int64_t pb) {
    const gemmk::KernelSet<T>& ks = *jb.ks;
    const DirectConv& d = *jb.d;
    const int64_t NR = ks.nr, MR = ks.mr, P = d.OH * d.OW, npos = jb.ppad / MR;
    const int64_t c0 = c * jb.chunk * NR, nc = std::min(jb.chunk * NR, jb.M - c0);
    const int64_t p0 = pb * npos / jb.pos_blocks * MR, p1 = std::min(P, (pb + 1) * npos / jb.pos_blocks * MR);
    if (nc <= 0 || p1 <= p0) return;
    const int64_t np = p1 - p0, ldt = (nc + L - 1) / L * L;
    T* tile = t_bpanel.get<T>(size_t(np * ldt));
    const T* Ag = jb.A + g * jb.ppad * jb.K;
    const T* Bg = jb.B + g * jb.npad * jb.K;
    for (int64_t p = 0; p < jb.nk; ++p) {
        const int64_t pc = p * jb.kc_max, kc = std::min(jb.kc_max, jb.K - pc);
        const T* a = Ag + pc * jb.ppad + p0 * kc;
        const T* b = Bg + pc * jb.npad + c0 * kc;
        if (ks.macro_next && p + 1 < jb.nk) {  // (the weights stream from memory: the next block's first panel)
            const int64_t kn = std::min(jb.kc_max, jb.K - pc - kc);
            ks.macro_next(np, nc, kc, a, b, tile, ldt, T(1), p == 0 ? T(0) : T(1), Bg + (pc + kc) * jb.npad + c0 * kn);
        } else {
            ks.macro(np, nc, kc, a, b, tile, ldt, T(1), p == 0 ? T(0) : T(1));
        }
    }
    T* yg = jb.y + (g * jb.M + c0) * P + p0;
    const bool full = epi_has_full(*jb.epi);
    if (!full && ldt <= 1024) {  // the epilogue on the tile, whole vectors of channels, then transposed out
        T zeros[1024] = {};
        epilogue_block_t<T, L>(*jb.epi, g * jb.M + c0, np, tile, ldt, ldt, zeros);
    }
    for (int64_t o = 0; o < nc; ++o) {
        T* row = yg + o * P;
        const T* col = tile + o;
        for (int64_t q = 0; q < np; ++q) row[q] = col[q * ldt];
    }
    if (full || ldt > 1024) epilogue_block<T, L>(*jb.epi, jb.n, g * jb.M + c0, nc, p0, yg, P, np);
}

#define MNN_PACKPOS_F32(L) pack_positions<float, L>(jb, g, i)
#define MNN_PACKPOS_F64(L) pack_positions<double, L>(jb, g, i)
MNN_ISA_VARIANTS_LANES(pack_positions_f32, (const JobT<float>& jb, int64_t g, int64_t i), MNN_PACKPOS_F32, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(pack_positions_f64, (const JobT<double>& jb, int64_t g, int64_t i), MNN_PACKPOS_F64, 8, 4, 2)
inline auto pack_positions_for(CpuLevel level, float) { return pack_positions_f32_for(level); }
inline auto pack_positions_for(CpuLevel level, double) { return pack_positions_f64_for(level); }
#define MNN_TTASK_F32(L) gemm_t_task<float, L>(jb, g, c, pb)
#define MNN_TTASK_F64(L) gemm_t_task<double, L>(jb, g, c, pb)
MNN_ISA_VARIANTS_LANES(gemm_t_task_f32, (const JobT<float>& jb, int64_t g, int64_t c, int64_t pb), MNN_TTASK_F32,
                       16, 8, 4)
MNN_ISA_VARIANTS_LANES(gemm_t_task_f64, (const JobT<double>& jb, int64_t g, int64_t c, int64_t pb), MNN_TTASK_F64,
                       8, 4, 2)
inline auto gemm_t_task_for(CpuLevel level, float) { return gemm_t_task_f32_for(level); }
inline auto gemm_t_task_for(CpuLevel level, double) { return gemm_t_task_f64_for(level); }

#define MNN_TASK_F32(L) gemm_task<float, L>(jb, g, i0, i1, q0, q1)
#define MNN_TASK_F64(L) gemm_task<double, L>(jb, g, i0, i1, q0, q1)
MNN_ISA_VARIANTS_LANES(gemm_task_f32, (const Job<float>& jb, int64_t g, int64_t i0, int64_t i1, int64_t q0,
                                       int64_t q1), MNN_TASK_F32, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(gemm_task_f64, (const Job<double>& jb, int64_t g, int64_t i0, int64_t i1, int64_t q0,
                                       int64_t q1), MNN_TASK_F64, 8, 4, 2)

#define MNN_FILL_F32(L) fill_planes<float, L>(d, p, x, c0, c1, planes)
#define MNN_FILL_F64(L) fill_planes<double, L>(d, p, x, c0, c1, planes)
MNN_ISA_VARIANTS_LANES(fill_planes_f32, (const DirectConv& d, const Planes& p, const float* x, int64_t c0,
                                         int64_t c1, float* planes), MNN_FILL_F32, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(fill_planes_f64, (const DirectConv& d, const Planes& p, const double* x, int64_t c0,
                                         int64_t c1, double* planes), MNN_FILL_F64, 8, 4, 2)
inline auto fill_planes_for(CpuLevel level, float) { return fill_planes_f32_for(level); }
inline auto fill_planes_for(CpuLevel level, double) { return fill_planes_f64_for(level); }
inline auto gemm_task_for(CpuLevel level, float) { return gemm_task_f32_for(level); }
inline auto gemm_task_for(CpuLevel level, double) { return gemm_task_f64_for(level); }

// Tasks [0, n) of about equal work on `threads` threads: tiny layers on one; else each thread takes
// its own contiguous range of them (the same in every call, so consecutive layers whose tasks go
// in pixel order find their input in the core that wrote it), then helps with the others' rest.
template <typename F>
void run_tasks(int64_t n, int threads, bool tiny, F&& f) {
    if (tiny || threads <= 1 || n <= 1) {
        for (int64_t t = 0; t < n; ++t) f(t);
        return;
    }
    parallel_for_ranges(n, [&](int64_t a, int64_t b) {
        for (int64_t t = a; t < b; ++t) f(t);
    });
}

}  // namespace

// Positions as the GEMM's rows (the transposed product) when a layer has few of them and a
// depth that pays for the transposed write: when its tiles waste clearly less.
template <typename T>
bool use_transposed(const gemmk::KernelSet<T>& ks, int64_t P, int64_t M, int64_t K) {
    if (P > 256 || K < 128) return false;
    const int64_t MR = ks.mr, NR = ks.nr, half = std::max<int64_t>(1, NR / 2);
    const double cols = double(P) / double((P + NR - 1) / NR * NR) * double(M) / double((M + MR - 1) / MR * MR);
    const double rows = double(P) / double((P + MR - 1) / MR * MR) * double(M) / double((M + half - 1) / half * half);
    return rows > 1.04 * cols;
}

template <typename T>
void conv2d_gemm(const DirectConv& d, const T* x, const Tensor& w, const EpiRt<T>& epi, T* y) {
    if constexpr (std::is_same_v<T, float>)
        if (conv2d_stem(d, x, w.data<float>(), epi, y)) return;  // (few input channels: direct, conv_stem.cc)
    const CpuLevel level = active_level();
    const gemmk::KernelSet<T>& ks = gemm_kernel_set<T>(level);
    const int64_t G = d.G, Cg = d.C / G, Og = d.O / G, taps = d.kh * d.kw, K = Cg * taps, P = d.OH * d.OW;
    const bool transposed = use_transposed(ks, P, Og, K);
    std::shared_ptr<const Packed> pw = packed_weights<T>(w, G, ks, level, transposed);
    const Planes pl = make_planes(d, 16, true);  // (slack: the panel packer's unmasked 16-lane loads)
    // Stride 1, as many output as input columns, AVX-512 float: the input itself with masked taps.
    const bool same = std::is_same_v<T, float> && level == CpuLevel::Avx512 && !transposed && !pl.identity &&
                      ks.nr == 32 && d.sh == 1 && d.sw == 1 && d.OW == d.W && taps <= 64;
    std::vector<int64_t> koff(static_cast<size_t>(K));
    for (int64_t c = 0; c < Cg; ++c)
        for (int64_t i = 0; i < d.kh; ++i)
            for (int64_t j = 0; j < d.kw; ++j) {
                const int64_t t = i * d.kw + j;
                koff[size_t(c * taps + t)] = same ? c * d.H * d.W + (i * d.dh - d.pt) * d.W + j * d.dw - d.pl
                                                  : c * pl.S * pl.PL + pl.tap_off[size_t(t)];
            }

    const int threads = std::max(1, get_thread_number());
    const int64_t flops = 2 * Og * K * P * G;
    const auto fill = fill_planes_for(level, T());
    T* planes = pl.identity || same ? nullptr : t_planes.get<T>(size_t(d.C * pl.S * pl.PL));
    auto make_planes_of = [&](const T* xn) {
        if (!pl.identity)
            parallel_for(d.C, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, pl.S * pl.PL)),
                         [&](int64_t c0, int64_t c1) { fill(d, pl, xn, c0, c1, planes); });
    };

    if (transposed) {
        const int64_t MR = ks.mr, NR = ks.nr, npos = (P + MR - 1) / MR, ppad = npos * MR;
        const int64_t chpan = (Og + NR - 1) / NR;
        const int64_t chunk = std::max<int64_t>(1, chpan * G / (4 * threads));
        const int64_t chunks = (chpan + chunk - 1) / chunk;
        // Few channel chunks (a layer with few output channels): split the positions too.
        int64_t pos_blocks = G * chunks >= 4 * threads ? 1
                             : std::min(npos, (4 * threads + G * chunks - 1) / (G * chunks));
        // A whole number of tasks per thread where the positions allow (run_tasks splits them evenly).
        while ((G * chunks * pos_blocks) % threads != 0 && pos_blocks < npos) ++pos_blocks;
        const int64_t tasks = G * chunks * pos_blocks, gc = G * chunks;
        T* apack = t_apack.get<T>(size_t(G * ppad * K));
        const auto pack = pack_positions_for(level, T());
        const auto task = gemm_t_task_for(level, T());
        for (int64_t n = 0; n < d.N; ++n) {
            const T* xn = x + n * d.C * d.H * d.W;
            make_planes_of(xn);
            const JobT<T> jb{&ks, &d, &pl, static_cast<const T*>(pw->data), apack, pl.identity ? xn : planes,
                             koff.data(), &epi, y + n * d.O * P, n, Og, K, pw->kc_max, pw->nk, pw->mpad, ppad, Cg,
                             chunk, pos_blocks};
            const int64_t pack_grain = std::max<int64_t>(
                1, std::min<int64_t>(4096 / std::max<int64_t>(1, K), (G * npos + threads - 1) / threads));
            parallel_for(G * npos, pack_grain, [&](int64_t a, int64_t b) {
                for (int64_t t = a; t < b; ++t) pack(jb, t / npos, t % npos);
            });
            // Position block major: a thread's share of the tasks reuses its packed positions.
            run_tasks(tasks, threads, flops < (int64_t(1) << 21), [&](int64_t t) {
                task(jb, t % gc / chunks, t % chunks, t / gc);
            });
        }
        return;
    }

#if defined(MNN_SPAN_MASKS)
    RegPlan reg_plan;
    if constexpr (std::is_same_v<T, float>)
        if (level == CpuLevel::Avx512) reg_plan = reg_epi_select(epi);
#endif
    const int64_t MR = ks.mr, mp = (Og + MR - 1) / MR, npan = (P + ks.nr - 1) / ks.nr;
    // Panels per task: more when the depth is small (a long block per output row), while there
    // are plenty of tasks; then row blocks, enough to keep the threads busy when panels are few.
    int64_t pg = Og < 64 ? 1 : K <= 64 ? 4 : K <= 256 ? 2 : 1;
    while (pg > 1 && G * ((npan + pg - 1) / pg) < 8 * threads) pg /= 2;
    const int64_t ngroups = (npan + pg - 1) / pg;
    int64_t rb = 1;
    while (G * ngroups * rb < 8 * threads && rb * 2 <= mp) rb *= 2;
    const int64_t tasks = G * rb * ngroups;
    const bool pixels_outer = P * d.C >= d.O * K;
    const auto task = gemm_task_for(level, T());
    for (int64_t n = 0; n < d.N; ++n) {
        const T* xn = x + n * d.C * d.H * d.W;
        if (!same) make_planes_of(xn);
        Job<T> jb{&ks, &d, &pl, static_cast<const T*>(pw->data), pl.identity || same ? xn : planes, koff.data(),
                  &epi, y + n * d.O * P, n, Og, K, pw->kc_max, pw->nk, pw->mpad, Cg, same};
#if defined(MNN_SPAN_MASKS)
        if constexpr (std::is_same_v<T, float>)
            if (reg_plan.chain != RegChain::Other && reg_plan.chain != RegChain::None) {
                jb.reg_rows = reg_epi_pick<RegRows>(reg_plan.chain);
                jb.reg_plan = &reg_plan;
            }
#endif
        run_tasks(tasks, threads, flops < (int64_t(1) << 21), [&](int64_t t) {
            // (pixels outermost where the input outweighs the weights: a thread's range is rows)
            const int64_t qg = pixels_outer ? t / (rb * G) : t % ngroups;
            const int64_t r = pixels_outer ? t % rb : (t / ngroups) % rb;
            const int64_t g = pixels_outer ? t / rb % G : t / (ngroups * rb);
            const int64_t i0 = r * mp / rb * MR, i1 = std::min(Og, (r + 1) * mp / rb * MR);
            if (i0 < i1) task(jb, g, i0, i1, qg * pg, std::min(npan, (qg + 1) * pg));
        });
    }
}

void clear_packed_weights() { pack_cache().clear(); }

int64_t packed_weights_bytes() { return pack_cache().bytes(); }

template void conv2d_gemm<float>(const DirectConv&, const float*, const Tensor&, const EpiRt<float>&, float*);
template void conv2d_gemm<double>(const DirectConv&, const double*, const Tensor&, const EpiRt<double>&, double*);

}  // namespace convgeom
}  // namespace mnn
