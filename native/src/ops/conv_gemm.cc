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
//   columns through the epilogue (bias, fused ops) while it is in L1.
#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "ops/conv_epilogue.h"
#include "ops/conv_planes.h"
#include "ops/gemm_kernels.h"
#include "ops/isa_variants.h"

namespace mnn {

template <typename T> const gemmk::KernelSet<T>& gemm_kernel_set(CpuLevel level);  // gemm.cc

namespace convgeom {
namespace {

// 64-byte aligned per-thread scratch that only grows.
struct Scratch {
    void* p = nullptr;
    size_t bytes = 0;
    ~Scratch() {
        if (p) ::operator delete(p, std::align_val_t(64));
    }
    template <typename T>
    T* get(size_t n) {
        const size_t need = std::max<size_t>(n * sizeof(T), 64);
        if (need > bytes) {
            if (p) ::operator delete(p, std::align_val_t(64));
            p = nullptr;
            bytes = 0;
            p = ::operator new(need, std::align_val_t(64));
            bytes = need;
        }
        return static_cast<T*>(p);
    }
};
thread_local Scratch t_planes, t_bpanel, t_tile;

// ---- packed weights ---------------------------------------------------------------------------

struct Packed {
    std::weak_ptr<Storage> src;  // the weight's storage (identity; never kept alive by the cache)
    const Storage* src_ptr = nullptr;
    int64_t offset = 0;
    Shape shape;
    int64_t groups = 0;
    CpuLevel level = CpuLevel::Generic;
    DType dtype = DType::Float32;
    int64_t M = 0, K = 0, mr = 0, kc_max = 0, nk = 0, mpad = 0;
    void* data = nullptr;  // groups * mpad * K values: group g at g * mpad * K, depth block p at pc * mpad
    size_t bytes = 0;
    ~Packed() {
        if (data) ::operator delete(data, std::align_val_t(64));
    }
};

struct PackCache {
    std::mutex mu;
    std::unordered_map<const Storage*, std::vector<std::shared_ptr<Packed>>> entries;
    size_t bytes = 0;
};
PackCache& pack_cache() {
    static PackCache* c = new PackCache();  // (never destroyed: used from pool threads at exit)
    return *c;
}
constexpr size_t kPackCacheBytes = size_t(1) << 30;

bool same_layout(const Packed& p, const Tensor& w, int64_t groups, CpuLevel level) {
    return p.src_ptr == w.storage.get() && p.offset == w.offset_bytes && p.shape == w.shape() &&
           p.groups == groups && p.level == level && p.dtype == w.dtype();
}

// Drops entries whose weight tensor is gone (under the lock).
void sweep(PackCache& c) {
    for (auto it = c.entries.begin(); it != c.entries.end();) {
        auto& v = it->second;
        for (size_t i = 0; i < v.size();) {
            if (v[i]->src.expired()) {
                c.bytes -= v[i]->bytes;
                v.erase(v.begin() + long(i));
            } else {
                ++i;
            }
        }
        it = v.empty() ? c.entries.erase(it) : std::next(it);
    }
}

template <typename T>
std::shared_ptr<const Packed> packed_weights(const Tensor& w, int64_t G, const gemmk::KernelSet<T>& ks, CpuLevel level) {
    const bool cacheable = w.storage && !w.storage->rewritable;
    PackCache& cache = pack_cache();
    if (cacheable) {
        std::lock_guard<std::mutex> lk(cache.mu);
        auto it = cache.entries.find(w.storage.get());
        if (it != cache.entries.end())
            for (const auto& p : it->second)
                if (same_layout(*p, w, G, level) && p->src.lock() == w.storage) return p;
    }
    auto p = std::make_shared<Packed>();
    p->src = w.storage;
    p->src_ptr = w.storage.get();
    p->offset = w.offset_bytes;
    p->shape = w.shape();
    p->groups = G;
    p->level = level;
    p->dtype = w.dtype();
    const int64_t O = w.shape()[0];
    p->M = O / G;
    p->K = w.numel() / std::max<int64_t>(O, 1);
    p->mr = ks.mr;
    p->nk = (p->K + ks.kc - 1) / ks.kc;
    p->kc_max = (p->K + p->nk - 1) / p->nk;
    p->mpad = (p->M + ks.mr - 1) / ks.mr * ks.mr;
    p->bytes = size_t(G * p->mpad * p->K) * sizeof(T);
    p->data = ::operator new(std::max<size_t>(p->bytes, 64), std::align_val_t(64));
    const T* wd = w.data<T>();
    T* dst = static_cast<T*>(p->data);
    const int64_t nk = p->nk, M = p->M, K = p->K, kc_max = p->kc_max, mpad = p->mpad;
    parallel_for(G * nk, 1, [&](int64_t a, int64_t b) {
        for (int64_t t = a; t < b; ++t) {
            const int64_t g = t / nk, pc = (t % nk) * kc_max, kc = std::min(kc_max, K - pc);
            ks.pack_a(false, wd + g * M * K + pc, K, M, kc, dst + g * mpad * K + pc * mpad);
        }
    });
    if (cacheable) {
        std::lock_guard<std::mutex> lk(cache.mu);
        sweep(cache);
        if (cache.bytes + p->bytes > kPackCacheBytes) {  // over the budget: start afresh
            cache.entries.clear();
            cache.bytes = 0;
        }
        if (p->bytes <= kPackCacheBytes) {
            cache.entries[p->src_ptr].push_back(p);
            cache.bytes += p->bytes;
        }
    }
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
};

// B panel: rows k in [k0, k0 + kc) of columns [j0, j0 + n), zero past n.
template <typename T, int NR>
MNN_ALWAYS_INLINE void pack_rows_nr(const T* base, const int64_t* koff, int64_t kc, int64_t j0, int64_t n, T* dst) {
    if (n == NR) {
        for (int64_t k = 0; k < kc; ++k) {
            const T* s = base + koff[k] + j0;
            T* dk = dst + k * NR;
            for (int j = 0; j < NR; ++j) dk[j] = s[j];
        }
    } else {
        for (int64_t k = 0; k < kc; ++k) {
            const T* s = base + koff[k] + j0;
            T* dk = dst + k * NR;
            for (int64_t j = 0; j < n; ++j) dk[j] = s[j];
            for (int64_t j = n; j < NR; ++j) dk[j] = T(0);
        }
    }
}

template <typename T>
MNN_ALWAYS_INLINE void pack_rows(int nr, const T* base, const int64_t* koff, int64_t kc, int64_t j0, int64_t n, T* dst) {
    switch (nr) {
        case 32: return pack_rows_nr<T, 32>(base, koff, kc, j0, n, dst);
        case 16: return pack_rows_nr<T, 16>(base, koff, kc, j0, n, dst);
        case 8: return pack_rows_nr<T, 8>(base, koff, kc, j0, n, dst);
        case 4: return pack_rows_nr<T, 4>(base, koff, kc, j0, n, dst);
        default:
            for (int64_t k = 0; k < kc; ++k) {
                const T* s = base + koff[k] + j0;
                for (int64_t j = 0; j < nr; ++j) dst[k * nr + j] = j < n ? s[j] : T(0);
            }
    }
}

template <typename T, int L>
MNN_ALWAYS_INLINE void gemm_task(const Job<T>& jb, int64_t g, int64_t i0, int64_t i1, int64_t q) {
    const gemmk::KernelSet<T>& ks = *jb.ks;
    const DirectConv& d = *jb.d;
    const Planes& pl = *jb.pl;
    const int nr = ks.nr;
    const int64_t j0 = q * nr, n = std::min<int64_t>(nr, pl.Q - j0), rows = i1 - i0;
    const int64_t P = d.OH * d.OW, Og = jb.M;
    const T* base = jb.planes + g * jb.Cg * pl.S * pl.PL;
    const T* A = jb.A + g * jb.mpad * jb.K;
    T* yg = jb.y + g * Og * P;
    const bool direct = pl.Wp == d.OW;  // wide == real: write into y, then the epilogue in place
    T* bpanel = t_bpanel.get<T>(size_t(jb.kc_max * nr));
    T* C;
    int64_t ldc;
    if (direct) {
        C = yg + i0 * P + j0;
        ldc = P;
    } else {
        C = t_tile.get<T>(size_t(rows * nr));
        ldc = nr;
    }
    for (int64_t p = 0; p < jb.nk; ++p) {
        const int64_t pc = p * jb.kc_max, kc = std::min(jb.kc_max, jb.K - pc);
        pack_rows<T>(nr, base, jb.koff + pc, kc, j0, n, bpanel);
        ks.macro(rows, n, kc, A + pc * jb.mpad + i0 * kc, bpanel, C, ldc, T(1), p == 0 ? T(0) : T(1));
    }
    const EpiRt<T>& e = *jb.epi;
    const int64_t o0 = g * Og;
    if (direct) {
        epilogue_block<T, L>(e, jb.n, o0 + i0, rows, j0, C, P, n);
        return;
    }
    const bool full = epi_has_full(e);
    if (!full)  // the tile in place (whole vectors: its rows are nr >= n rounded up to L wide)
        epilogue_block<T, L>(e, jb.n, o0 + i0, rows, 0, C, ldc, (n + L - 1) / L * L);
    // The tile's real columns, in runs of one output row each.
    for (int64_t qq = j0; qq < j0 + n;) {
        const int64_t oh = qq / pl.Wp, ow = qq - oh * pl.Wp;
        const int64_t run = std::min(j0 + n, (oh + 1) * pl.Wp) - qq;
        if (ow < d.OW) {
            const int64_t len = std::min(run, d.OW - ow), pix = oh * d.OW + ow;
            for (int64_t o = i0; o < i1; ++o) simd::copy<T, L>(yg + o * P + pix, C + (o - i0) * ldc + (qq - j0), len);
            if (full) epilogue_block<T, L>(e, jb.n, o0 + i0, rows, pix, yg + i0 * P + pix, P, len);
        }
        qq += run;
    }
}

#define MNN_TASK_F32(L) gemm_task<float, L>(jb, g, i0, i1, q)
#define MNN_TASK_F64(L) gemm_task<double, L>(jb, g, i0, i1, q)
MNN_ISA_VARIANTS_LANES(gemm_task_f32, (const Job<float>& jb, int64_t g, int64_t i0, int64_t i1, int64_t q),
                       MNN_TASK_F32, 16, 8, 4)
MNN_ISA_VARIANTS_LANES(gemm_task_f64, (const Job<double>& jb, int64_t g, int64_t i0, int64_t i1, int64_t q),
                       MNN_TASK_F64, 8, 4, 2)

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

}  // namespace

template <typename T>
void conv2d_gemm(const DirectConv& d, const T* x, const Tensor& w, const EpiRt<T>& epi, T* y) {
    const CpuLevel level = active_level();
    const gemmk::KernelSet<T>& ks = gemm_kernel_set<T>(level);
    const int64_t G = d.G, Cg = d.C / G, Og = d.O / G, taps = d.kh * d.kw, K = Cg * taps;
    std::shared_ptr<const Packed> pw = packed_weights<T>(w, G, ks, level);
    const Planes pl = make_planes(d, 0, true);
    std::vector<int64_t> koff(static_cast<size_t>(K));
    for (int64_t c = 0; c < Cg; ++c)
        for (int64_t t = 0; t < taps; ++t) koff[size_t(c * taps + t)] = c * pl.S * pl.PL + pl.tap_off[size_t(t)];

    const int threads = std::max(1, get_thread_number());
    const int64_t MR = ks.mr, mp = (Og + MR - 1) / MR, npan = (pl.Q + ks.nr - 1) / ks.nr;
    // Row blocks: enough tasks to keep the threads busy when there are few panels.
    int64_t rb = 1;
    while (G * npan * rb < 3 * threads && rb * 2 <= mp) rb *= 2;
    const int64_t tasks = G * rb * npan;
    const int64_t flops = 2 * Og * K * pl.Q * G;
    const int64_t grain = flops < (int64_t(1) << 21) ? tasks : 1;  // tiny layers: one thread

    const auto task = gemm_task_for(level, T());
    const auto fill = fill_planes_for(level, T());
    T* planes = pl.identity ? nullptr : t_planes.get<T>(size_t(d.C * pl.S * pl.PL));
    for (int64_t n = 0; n < d.N; ++n) {
        const T* xn = x + n * d.C * d.H * d.W;
        if (!pl.identity)
            parallel_for(d.C, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, pl.S * pl.PL)),
                         [&](int64_t c0, int64_t c1) { fill(d, pl, xn, c0, c1, planes); });
        const Job<T> jb{&ks, &d, &pl, static_cast<const T*>(pw->data), pl.identity ? xn : planes, koff.data(), &epi,
                        y + n * d.O * d.OH * d.OW, n, Og, K, pw->kc_max, pw->nk, pw->mpad, Cg};
        parallel_for(tasks, grain, [&](int64_t a, int64_t b) {
            for (int64_t t = a; t < b; ++t) {
                const int64_t q = t % npan, r = (t / npan) % rb, g = t / (npan * rb);
                const int64_t i0 = r * mp / rb * MR, i1 = std::min(Og, (r + 1) * mp / rb * MR);
                if (i0 < i1) task(jb, g, i0, i1, q);
            }
        });
    }
}

void clear_packed_weights() {
    PackCache& c = pack_cache();
    std::lock_guard<std::mutex> lk(c.mu);
    c.entries.clear();
    c.bytes = 0;
}

int64_t packed_weights_bytes() {
    PackCache& c = pack_cache();
    std::lock_guard<std::mutex> lk(c.mu);
    sweep(c);
    return int64_t(c.bytes);
}

template void conv2d_gemm<float>(const DirectConv&, const float*, const Tensor&, const EpiRt<float>&, float*);
template void conv2d_gemm<double>(const DirectConv&, const double*, const Tensor&, const EpiRt<double>&, double*);

}  // namespace convgeom
}  // namespace mnn
