// AVX-512F GEMM micro-kernels (compiled with -mavx512f -mavx2 -mfma; chosen at
// run time by gemm.cc only when the CPU and OS support AVX-512F).
//
// Register tile: MR = 14 rows x two zmm vectors (32 floats / 16 doubles):
// 28 accumulators + 2 B vectors of the 32 zmm registers.  Edge tiles run a
// kernel instantiated for exactly the rows left (1..13) and one or two
// vectors, with masked loads / stores for the last partial vector, so no
// work is wasted on padding and no temporary tile is needed.
#if defined(MNN_GEMM_X86)
#include <immintrin.h>

#include "ops/gemm_tile.h"

namespace mnn {
namespace gemmk {
namespace {

constexpr int kMr = 14;
constexpr int kDirectMaxKc = 256;  // depth of a block macro_direct_b takes (its edge panel is on the stack)

template <typename T> struct Vec;

template <> struct Vec<float> {
    using reg = __m512;
    using mask = __mmask16;
    static constexpr int W = 16;
    static MNN_INLINE reg zero() { return _mm512_setzero_ps(); }
    static MNN_INLINE reg load(const float* p) { return _mm512_load_ps(p); }
    static MNN_INLINE reg loadu1(const float* p) { return _mm512_loadu_ps(p); }
    static MNN_INLINE void store(float* p, reg v) { _mm512_store_ps(p, v); }
    static MNN_INLINE reg set1(float v) { return _mm512_set1_ps(v); }
    static MNN_INLINE reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
    static MNN_INLINE reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
    static MNN_INLINE reg loadu(const float* p, mask m) { return _mm512_maskz_loadu_ps(m, p); }
    static MNN_INLINE void storeu(float* p, mask m, reg v) { _mm512_mask_storeu_ps(p, m, v); }
    static MNN_INLINE reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
    static MNN_INLINE reg max(reg a, reg b) { return _mm512_max_ps(a, b); }  // a > b ? a : b
    static MNN_INLINE reg min(reg a, reg b) { return _mm512_min_ps(a, b); }  // a < b ? a : b
    static MNN_INLINE reg keep_gt0_or_nan(reg x) {  // (x > 0 || x != x) ? x : +0
        return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, zero(), _CMP_NLE_UQ), x);
    }
};

template <> struct Vec<double> {
    using reg = __m512d;
    using mask = __mmask8;
    static constexpr int W = 8;
    static MNN_INLINE reg zero() { return _mm512_setzero_pd(); }
    static MNN_INLINE reg load(const double* p) { return _mm512_load_pd(p); }
    static MNN_INLINE reg loadu1(const double* p) { return _mm512_loadu_pd(p); }
    static MNN_INLINE void store(double* p, reg v) { _mm512_store_pd(p, v); }
    static MNN_INLINE reg set1(double v) { return _mm512_set1_pd(v); }
    static MNN_INLINE reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
    static MNN_INLINE reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
    static MNN_INLINE reg loadu(const double* p, mask m) { return _mm512_maskz_loadu_pd(m, p); }
    static MNN_INLINE void storeu(double* p, mask m, reg v) { _mm512_mask_storeu_pd(p, m, v); }
    static MNN_INLINE reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
    static MNN_INLINE reg max(reg a, reg b) { return _mm512_max_pd(a, b); }
    static MNN_INLINE reg min(reg a, reg b) { return _mm512_min_pd(a, b); }
    static MNN_INLINE reg keep_gt0_or_nan(reg x) {
        return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(x, zero(), _CMP_NLE_UQ), x);
    }
};

// C[0:ROWS, 0:NV*W] (the last vector limited by `last`) = alpha * A B + beta * C.
// A panel rows are MR apart per k, B rows `bs` apart (2*W for a packed panel, or B's own row
// stride when it is read in place).  pf_lines > 0: also prefetches that many cache lines from pf
// on into L2, one (or two) per step of k.  PACK (B read in place, NV = 2): each row of B is also
// stored to the packed panel `pk` as it is used, and rows kPackAhead ahead are prefetched (each
// is on another page, where no hardware prefetcher follows; a prefetch past B's end never faults).
constexpr int64_t kPackAhead = 16;

template <typename T, int ROWS, int NV, int MR, bool PACK = false>
void uk(int64_t kc, const T* a, const T* b, int64_t bs, T* c, int64_t ldc, T alpha, T beta,
        typename Vec<T>::mask last, const StoreEpi<T>* epi = nullptr, const T* pf = nullptr,
        int64_t pf_lines = 0, T* pk = nullptr) {
    using V = Vec<T>;
    using reg = typename V::reg;
    const typename V::mask full = typename V::mask(~0u);
    reg acc[ROWS][NV];
    MNN_UNROLL
    for (int i = 0; i < ROWS; ++i) {
        MNN_UNROLL
        for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
    }
    MNN_UNROLL
    for (int i = 0; i < ROWS; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    auto step = [&]() MNN_INLINE_LAMBDA {
        reg bv[NV];
        MNN_UNROLL
        for (int v = 0; v < NV; ++v) bv[v] = V::loadu1(b + v * V::W);
        if constexpr (PACK) {
            MNN_UNROLL
            for (int v = 0; v < NV; ++v) V::store(pk + v * V::W, bv[v]);
            pk += NV * V::W;
            _mm_prefetch(reinterpret_cast<const char*>(b + kPackAhead * bs), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(b + kPackAhead * bs + V::W), _MM_HINT_T0);
        }
        MNN_UNROLL
        for (int i = 0; i < ROWS; ++i) {
            reg av = V::set1(a[i]);
            MNN_UNROLL
            for (int v = 0; v < NV; ++v) acc[i][v] = V::fmadd(av, bv[v], acc[i][v]);
        }
        a += MR;
        b += bs;
    };
    int64_t k = 0;
    if (pf_lines > 0) {
        const char* p = reinterpret_cast<const char*>(pf);
        const int64_t n = imin(kc, pf_lines), twice = pf_lines - n;  // twice > 0: two lines per k
        for (; k < n; ++k) {
            _mm_prefetch(p + 64 * k, _MM_HINT_T1);
            if (k < twice) _mm_prefetch(p + 64 * (k + n), _MM_HINT_T1);
            step();
        }
    }
    for (; k < kc; ++k) step();
    if (epi) {  // (alpha is 1): C's old values (beta), then the program's steps, then one store
        if (beta != T(0)) {
            const reg vb = V::set1(beta);
            MNN_UNROLL
            for (int i = 0; i < ROWS; ++i) {
                MNN_UNROLL
                for (int v = 0; v < NV; ++v)
                    acc[i][v] = V::fmadd(vb, V::loadu(c + i * ldc + v * V::W, v == NV - 1 ? last : full), acc[i][v]);
            }
        }
        for (int s = 0; s < epi->n; ++s) {
            const typename StoreEpi<T>::Step& st = epi->steps[s];
            switch (st.op) {
                case StoreEpi<T>::AddRow:
                    MNN_UNROLL
                    for (int i = 0; i < ROWS; ++i) {
                        const reg r = V::set1(st.ptr[i]);
                        MNN_UNROLL
                        for (int v = 0; v < NV; ++v) acc[i][v] = V::add(acc[i][v], r);
                    }
                    break;
                case StoreEpi<T>::AddCol: {
                    reg cv[NV];
                    MNN_UNROLL
                    for (int v = 0; v < NV; ++v) cv[v] = V::loadu(st.ptr + v * V::W, v == NV - 1 ? last : full);
                    MNN_UNROLL
                    for (int i = 0; i < ROWS; ++i) {
                        MNN_UNROLL
                        for (int v = 0; v < NV; ++v) acc[i][v] = V::add(acc[i][v], cv[v]);
                    }
                    break;
                }
                case StoreEpi<T>::AddFull:
                    MNN_UNROLL
                    for (int i = 0; i < ROWS; ++i) {
                        MNN_UNROLL
                        for (int v = 0; v < NV; ++v)
                            acc[i][v] = V::add(acc[i][v], V::loadu(st.ptr + i * st.ld + v * V::W,
                                                                   v == NV - 1 ? last : full));
                    }
                    break;
                case StoreEpi<T>::Relu: {
                    const reg z = V::zero();
                    MNN_UNROLL
                    for (int i = 0; i < ROWS; ++i) {
                        MNN_UNROLL
                        for (int v = 0; v < NV; ++v) acc[i][v] = V::max(acc[i][v], z);
                    }
                    break;
                }
                case StoreEpi<T>::MaxC: {
                    const reg cv = V::set1(st.c);
                    MNN_UNROLL
                    for (int i = 0; i < ROWS; ++i) {
                        MNN_UNROLL
                        for (int v = 0; v < NV; ++v) acc[i][v] = V::max(cv, acc[i][v]);
                    }
                    break;
                }
                case StoreEpi<T>::MinC: {
                    const reg cv = V::set1(st.c);
                    MNN_UNROLL
                    for (int i = 0; i < ROWS; ++i) {
                        MNN_UNROLL
                        for (int v = 0; v < NV; ++v) acc[i][v] = V::min(cv, acc[i][v]);
                    }
                    break;
                }
                case StoreEpi<T>::MaxPZ:
                    MNN_UNROLL
                    for (int i = 0; i < ROWS; ++i) {
                        MNN_UNROLL
                        for (int v = 0; v < NV; ++v) acc[i][v] = V::keep_gt0_or_nan(acc[i][v]);
                    }
                    break;
            }
        }
        MNN_UNROLL
        for (int i = 0; i < ROWS; ++i) {
            MNN_UNROLL
            for (int v = 0; v < NV; ++v) V::storeu(c + i * ldc + v * V::W, v == NV - 1 ? last : full, acc[i][v]);
        }
        return;
    }
    const reg va = V::set1(alpha);
    if (beta == T(0)) {
        MNN_UNROLL
        for (int i = 0; i < ROWS; ++i) {
            MNN_UNROLL
            for (int v = 0; v < NV; ++v)
                V::storeu(c + i * ldc + v * V::W, v == NV - 1 ? last : full, V::mul(va, acc[i][v]));
        }
    } else {
        const reg vb = V::set1(beta);
        MNN_UNROLL
        for (int i = 0; i < ROWS; ++i) {
            MNN_UNROLL
            for (int v = 0; v < NV; ++v) {
                T* p = c + i * ldc + v * V::W;
                typename V::mask m = v == NV - 1 ? last : full;
                V::storeu(p, m, V::fmadd(va, acc[i][v], V::mul(vb, V::loadu(p, m))));
            }
        }
    }
}

// Calls uk<ROWS = m> for a run-time m in [1, R].
template <typename T, int MR, int R>
struct Rows {
    static MNN_INLINE void run(int64_t m, int nv, int64_t kc, const T* a, const T* b, int64_t bs, T* c, int64_t ldc,
                               T alpha, T beta, typename Vec<T>::mask last, const StoreEpi<T>* epi, const T* pf,
                               int64_t pf_lines) {
        if (m == R) {
            if (nv == 2) uk<T, R, 2, MR>(kc, a, b, bs, c, ldc, alpha, beta, last, epi, pf, pf_lines);
            else uk<T, R, 1, MR>(kc, a, b, bs, c, ldc, alpha, beta, last, epi, pf, pf_lines);
        } else {
            Rows<T, MR, R - 1>::run(m, nv, kc, a, b, bs, c, ldc, alpha, beta, last, epi, pf, pf_lines);
        }
    }
};
template <typename T, int MR>
struct Rows<T, MR, 0> {
    static MNN_INLINE void run(int64_t, int, int64_t, const T*, const T*, int64_t, T*, int64_t, T, T,
                               typename Vec<T>::mask, const StoreEpi<T>*, const T*, int64_t) {}
};

// The register tiles over an mc x nc block; with `epi`, each tile's steps get their operands
// offset to the tile (rows i, columns j of the block).  Bd: B read in place (row stride ldb)
// instead of the packed panels Bp; its last, partial panel is packed on the stack.
template <typename T>
MNN_INLINE void macro_impl_epi(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc,
                               T alpha, T beta, const StoreEpi<T>* epi, const T* Bd = nullptr, int64_t ldb = 0,
                               const T* next = nullptr) {
    constexpr int W = Vec<T>::W, NR = 2 * W;
    StoreEpi<T> local;
    alignas(64) T edge[kDirectMaxKc * NR];
    const int64_t row_panels = (mc + kMr - 1) / kMr, pf_total = NR * kc * int64_t(sizeof(T)) / 64;
    for (int64_t j = 0; j < nc; j += NR) {
        const T* bp = Bp + (j / NR) * NR * kc;
        int64_t bs = NR;
        const int64_t n = imin(NR, nc - j);
        if (Bd) {
            if (n == NR) {
                bp = Bd + j;
                bs = ldb;
            } else {
                pack_b_impl<T, NR>(false, Bd + j, ldb, kc, n, edge);
                bp = edge;
            }
        }
        const int nv = n > W ? 2 : 1;
        const int64_t rem = n - (nv - 1) * W;  // columns in the last vector, 1..W
        const auto last = typename Vec<T>::mask((1u << rem) - 1u);
        for (int64_t i = 0; i < mc; i += kMr) {
            const T* ap = Ap + (i / kMr) * kMr * kc;
            const int64_t m = imin(kMr, mc - i);
            T* c = C + i * ldc + j;
            const StoreEpi<T>* e = nullptr;
            if (epi) {
                local = epi->at(i, j);
                e = &local;
            }
            // The next B panel (it streams from memory when B is a layer's weights; after the last
            // one, `next`: the caller's next panel) is fetched to L2 meanwhile, each row panel a
            // share of its lines: spread out, the stream neither fills the line-fill buffers nor
            // stalls one tile.
            const T* pf = nullptr;
            int64_t pf_lines = 0;
            const T* coming = j + NR < nc ? (Bd ? nullptr : bp + NR * kc) : next;
            if (coming) {
                const int64_t r = i / kMr, share = (pf_total + row_panels - 1) / row_panels;
                pf_lines = imin(share, pf_total - r * share);
                pf = coming + r * share * (64 / int64_t(sizeof(T)));
            }
            if (m == kMr && nv == 2) uk<T, kMr, 2, kMr>(kc, ap, bp, bs, c, ldc, alpha, beta, last, e, pf, pf_lines);
            else Rows<T, kMr, kMr>::run(m, nv, kc, ap, bp, bs, c, ldc, alpha, beta, last, e, pf, pf_lines);
        }
    }
}

// One whole panel of B (not transposed, row stride ldb) packed while it is used: the first row
// panel reads it in place and stores Bp, the others read Bp (KernelSet::macro_pack_b).
template <typename T>
void macro_pack_b(int64_t mc, int64_t kc, const T* Ap, const T* B, int64_t ldb, T* Bp, T* C, int64_t ldc, T alpha,
                  T beta, const StoreEpi<T>* epi, const T* next) {
    constexpr int NR = 2 * Vec<T>::W;
    if (mc < kMr) {  // (no whole first row panel to carry the packing)
        pack_b_impl<T, NR>(false, B, ldb, kc, NR, Bp);
        return macro_impl_epi<T>(mc, NR, kc, Ap, Bp, C, ldc, epi ? T(1) : alpha, beta, epi, nullptr, 0, next);
    }
    uk<T, kMr, 2, kMr, true>(kc, Ap, B, ldb, C, ldc, epi ? T(1) : alpha, beta, typename Vec<T>::mask(~0u), epi,
                             nullptr, 0, Bp);
    if (mc == kMr) return;
    StoreEpi<T> rest;  // the epilogue's operands from row kMr on
    if (epi) rest = epi->at(kMr, 0);
    macro_impl_epi<T>(mc - kMr, NR, kc, Ap + kMr * kc, Bp, C + kMr * ldc, ldc, epi ? T(1) : alpha, beta,
                      epi ? &rest : nullptr, nullptr, 0, next);
}

template <typename T>
void macro(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T alpha, T beta) {
    macro_impl_epi<T>(mc, nc, kc, Ap, Bp, C, ldc, alpha, beta, nullptr);
}

template <typename T>
void macro_next(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T alpha, T beta,
                const T* next) {
    macro_impl_epi<T>(mc, nc, kc, Ap, Bp, C, ldc, alpha, beta, nullptr, nullptr, 0, next);
}

template <typename T>
void macro_epi(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T beta,
               const StoreEpi<T>* epi) {
    macro_impl_epi<T>(mc, nc, kc, Ap, Bp, C, ldc, T(1), beta, epi);
}

template <typename T>
void macro_direct_b(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* B, int64_t ldb, T* C, int64_t ldc,
                    T alpha, T beta, const StoreEpi<T>* epi) {
    macro_impl_epi<T>(mc, nc, kc, Ap, nullptr, C, ldc, alpha, beta, epi, B, ldb);
}

// ---- float32 packing with whole vectors ------------------------------------------------------
// (The generic pack_*_impl copy element by element: at n <= 512 that was a third of the time.)

// r[0:16] (rows) <- their transpose (r[k] lane i = old r[i] lane k).
MNN_INLINE void transpose16(__m512 r[16]) {
    __m512 t[16];
    MNN_UNROLL
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // r[4g + c], 128-bit lane L: rows 4g..4g+3 at column 4L + c
    MNN_UNROLL
    for (int g = 0; g < 4; ++g) {
        const __m512 a = t[4 * g], b = t[4 * g + 1], c = t[4 * g + 2], d = t[4 * g + 3];
        r[4 * g] = _mm512_shuffle_ps(a, c, _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * g + 1] = _mm512_shuffle_ps(a, c, _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * g + 2] = _mm512_shuffle_ps(b, d, _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * g + 3] = _mm512_shuffle_ps(b, d, _MM_SHUFFLE(3, 2, 3, 2));
    }
    MNN_UNROLL
    for (int c = 0; c < 4; ++c) {
        const __m512 s0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88), s1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
        const __m512 s2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        const __m512 s3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
        t[c] = _mm512_shuffle_f32x4(s0, s2, 0x88);
        t[8 + c] = _mm512_shuffle_f32x4(s0, s2, 0xDD);
        t[4 + c] = _mm512_shuffle_f32x4(s1, s3, 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(s1, s3, 0xDD);
    }
    MNN_UNROLL
    for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// dst[k * ds + i] = src[i * ls + k] for i < m (<= 16), k < kc; lanes i of `out` written (zeros
// for m <= i).
MNN_INLINE void pack_transposed(const float* src, int64_t ls, int m, int64_t kc, float* dst, int64_t ds,
                                __mmask16 out) {
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
        const int64_t kn = imin(16, kc - k0);
        const __mmask16 km = __mmask16((1u << kn) - 1u);
        __m512 r[16];
        MNN_UNROLL
        for (int i = 0; i < 16; ++i) r[i] = i < m ? _mm512_maskz_loadu_ps(km, src + i * ls + k0) : _mm512_setzero_ps();
        transpose16(r);
        float* d = dst + k0 * ds;
        if (kn == 16) {
            MNN_UNROLL
            for (int k = 0; k < 16; ++k) _mm512_mask_storeu_ps(d + k * ds, out, r[k]);
        } else {
            for (int k = 0; k < kn; ++k) _mm512_mask_storeu_ps(d + k * ds, out, r[k]);
        }
    }
}

void pack_a_f32(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* Ap) {
    constexpr __mmask16 rows = __mmask16((1u << kMr) - 1u);
    for (int64_t i0 = 0; i0 < mc; i0 += kMr, Ap += kMr * kc) {
        const int m = int(imin(kMr, mc - i0));
        if (trans) {  // stored K x M: each k's MR values are contiguous
            const __mmask16 lm = __mmask16((1u << m) - 1u);
            const float* s = A + i0;
            for (int64_t k = 0; k < kc; ++k) _mm512_mask_storeu_ps(Ap + k * kMr, rows, _mm512_maskz_loadu_ps(lm, s + k * lda));
        } else {
            pack_transposed(A + i0 * lda, lda, m, kc, Ap, kMr, rows);
        }
    }
}

void pack_b_f32(bool trans, const float* B, int64_t ldb, int64_t kc, int64_t nc, float* Bp) {
    constexpr int NR = 32;
    for (int64_t j0 = 0; j0 < nc; j0 += NR, Bp += NR * kc) {
        const int n = int(imin(NR, nc - j0));
        if (!trans) {
            const float* s = B + j0;
            if (n == NR) {
                for (int64_t k = 0; k < kc; ++k) {
                    _mm512_store_ps(Bp + k * NR, _mm512_loadu_ps(s + k * ldb));
                    _mm512_store_ps(Bp + k * NR + 16, _mm512_loadu_ps(s + k * ldb + 16));
                }
            } else {
                const __mmask16 m0 = __mmask16((1u << imin(16, n)) - 1u);
                const __mmask16 m1 = __mmask16(n > 16 ? (1u << (n - 16)) - 1u : 0u);
                for (int64_t k = 0; k < kc; ++k) {
                    _mm512_store_ps(Bp + k * NR, _mm512_maskz_loadu_ps(m0, s + k * ldb));
                    _mm512_store_ps(Bp + k * NR + 16, _mm512_maskz_loadu_ps(m1, s + k * ldb + 16));
                }
            }
        } else {  // stored N x K: two 16-column halves, each a transpose
            const float* s = B + j0 * ldb;
            pack_transposed(s, ldb, int(imin(16, n)), kc, Bp, NR, __mmask16(0xFFFF));
            pack_transposed(s + 16 * ldb, ldb, int(n > 16 ? n - 16 : 0), kc, Bp + 16, NR, __mmask16(0xFFFF));
        }
    }
}

template <typename T>
KernelSet<T> kernel_set(int64_t mc) {
    KernelSet<T> ks;
    ks.name = "avx512";
    ks.mr = kMr;
    ks.nr = 2 * Vec<T>::W;
    ks.kc = 256;
    ks.mc = mc;
    ks.pack_a = &pack_a_impl<T, kMr>;
    ks.pack_b = &pack_b_impl<T, 2 * Vec<T>::W>;
    ks.macro = &macro<T>;
    ks.macro_next = &macro_next<T>;
    ks.macro_epi = &macro_epi<T>;
    ks.macro_direct_b = &macro_direct_b<T>;
    ks.direct_max_kc = kDirectMaxKc;
    return ks;
}

}  // namespace

float avx512_fma_probe(int64_t iters) {
    constexpr int kAcc = 24;  // independent chains: >= FMA latency x pipes, within the registers
    __m512 x[kAcc];
    for (int i = 0; i < kAcc; ++i) x[i] = _mm512_set1_ps(float(i) * 0.01f);
    const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
    for (int64_t t = 0; t < iters; ++t) {
        MNN_UNROLL
        for (int i = 0; i < kAcc; ++i) x[i] = _mm512_fmadd_ps(x[i], a, b);
    }
    __m512 s = x[0];
    for (int i = 1; i < kAcc; ++i) s = _mm512_add_ps(s, x[i]);
    alignas(64) float out[16];
    _mm512_storeu_ps(out, s);
    float r = 0;
    for (int i = 0; i < 16; ++i) r += out[i];
    return r;
}
int avx512_fma_lanes() { return 24 * 16; }

KernelSet<float> avx512_f32() {
    KernelSet<float> ks = kernel_set<float>(kMr * 12);
    ks.pack_a = &pack_a_f32;
    ks.pack_b = &pack_b_f32;
    ks.macro_pack_b = &macro_pack_b<float>;
    // Deep blocks for gemm(): 1024 (K <= 1024: one pass over C, A packed once) measured 5-8%
    // faster than 256 at n = 1024..2048 on a 48 KiB L1 / 2 MiB L2 core (Xeon, Emerald Rapids),
    // the B panel then streaming from L2; row blocks of 168 stay.
    ks.gemm_kc = 1024;
    return ks;
}
KernelSet<double> avx512_f64() {
    KernelSet<double> ks = kernel_set<double>(kMr * 8);
    ks.gemm_kc = 512;  // (the bytes of float32's 1024; not tuned separately)
    return ks;
}

}  // namespace gemmk
}  // namespace mnn
#endif
