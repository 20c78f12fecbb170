// Packing routines and the macro-kernel loop shared by the per-ISA GEMM files.
// Included by each gemm_<isa>.cc; everything here has internal linkage (an
// unnamed namespace) so each file gets its own copy compiled for its ISA.
// No standard-library includes on purpose (see gemm_kernels.h).
#pragma once
#include <cstdint>

#include "ops/gemm_kernels.h"

#if defined(__clang__)
#define MNN_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define MNN_UNROLL _Pragma("GCC unroll 32")
#else
#define MNN_UNROLL
#endif

#if defined(__GNUC__)
#define MNN_INLINE inline __attribute__((always_inline))
#define MNN_INLINE_LAMBDA __attribute__((always_inline))
#else
#define MNN_INLINE inline
#define MNN_INLINE_LAMBDA
#endif

namespace mnn {
namespace gemmk {
namespace {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// Ap[p*MR*kc + k*MR + i] = op(A)(i0 + i, k), zero past mc.
template <typename T, int MR>
void pack_a_impl(bool trans, const T* A, int64_t lda, int64_t mc, int64_t kc, T* Ap) {
    for (int64_t i0 = 0; i0 < mc; i0 += MR, Ap += MR * kc) {
        int64_t m = imin(MR, mc - i0);
        if (trans) {  // rows of the stored K x M matrix are contiguous along i
            const T* src = A + i0;
            if (m == MR) {
                for (int64_t k = 0; k < kc; ++k) {
                    const T* s = src + k * lda;
                    T* d = Ap + k * MR;
                    MNN_UNROLL
                    for (int i = 0; i < MR; ++i) d[i] = s[i];
                }
            } else {
                for (int64_t k = 0; k < kc; ++k) {
                    const T* s = src + k * lda;
                    T* d = Ap + k * MR;
                    for (int i = 0; i < MR; ++i) d[i] = i < m ? s[i] : T(0);
                }
            }
        } else {  // read each row once (sequential), write with stride MR
            const T* src = A + i0 * lda;
            int64_t k0 = 0;
            if (m == MR) {
                // 8-deep blocks: MR row reads, 8 contiguous MR-wide writes.
                for (; k0 + 8 <= kc; k0 += 8) {
                    T* d = Ap + k0 * MR;
                    MNN_UNROLL
                    for (int i = 0; i < MR; ++i) {
                        const T* s = src + i * lda + k0;
                        MNN_UNROLL
                        for (int k = 0; k < 8; ++k) d[k * MR + i] = s[k];
                    }
                }
            }
            for (int i = 0; i < MR; ++i) {
                T* d = Ap + i;
                if (i < m) {
                    const T* s = src + i * lda;
                    for (int64_t k = k0; k < kc; ++k) d[k * MR] = s[k];
                } else {
                    for (int64_t k = k0; k < kc; ++k) d[k * MR] = T(0);
                }
            }
        }
    }
}

// Bp[q*NR*kc + k*NR + j] = op(B)(k, j0 + j), zero past nc.
template <typename T, int NR>
void pack_b_impl(bool trans, const T* B, int64_t ldb, int64_t kc, int64_t nc, T* Bp) {
    for (int64_t j0 = 0; j0 < nc; j0 += NR, Bp += NR * kc) {
        int64_t n = imin(NR, nc - j0);
        if (!trans) {
            const T* src = B + j0;
            if (n == NR) {
                for (int64_t k = 0; k < kc; ++k) {
                    const T* s = src + k * ldb;
                    T* d = Bp + k * NR;
                    MNN_UNROLL
                    for (int j = 0; j < NR; ++j) d[j] = s[j];
                }
            } else {
                for (int64_t k = 0; k < kc; ++k) {
                    const T* s = src + k * ldb;
                    T* d = Bp + k * NR;
                    for (int j = 0; j < NR; ++j) d[j] = j < n ? s[j] : T(0);
                }
            }
        } else {  // stored N x K: read each row of B^T once, write with stride NR
            const T* src = B + j0 * ldb;
            int64_t k0 = 0;
            if (n == NR) {
                for (; k0 + 8 <= kc; k0 += 8) {
                    T* d = Bp + k0 * NR;
                    MNN_UNROLL
                    for (int j = 0; j < NR; ++j) {
                        const T* s = src + j * ldb + k0;
                        MNN_UNROLL
                        for (int k = 0; k < 8; ++k) d[k * NR + j] = s[k];
                    }
                }
            }
            for (int j = 0; j < NR; ++j) {
                T* d = Bp + j;
                if (j < n) {
                    const T* s = src + j * ldb;
                    for (int64_t k = k0; k < kc; ++k) d[k * NR] = s[k];
                } else {
                    for (int64_t k = k0; k < kc; ++k) d[k * NR] = T(0);
                }
            }
        }
    }
}

// Loops the register tile over an mc x nc block.  UK(kc, ap, bp, c, ldc, alpha, beta)
// computes one full MR x NR tile; edge tiles go through a local buffer.
template <typename T, int MR, int NR, void (*UK)(int64_t, const T*, const T*, T*, int64_t, T, T)>
void macro_impl(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T alpha, T beta) {
    alignas(64) T tmp[MR * NR];
    for (int64_t j = 0; j < nc; j += NR) {
        const T* bp = Bp + (j / NR) * NR * kc;
        int64_t n = imin(NR, nc - j);
        for (int64_t i = 0; i < mc; i += MR) {
            const T* ap = Ap + (i / MR) * MR * kc;
            int64_t m = imin(MR, mc - i);
            T* c = C + i * ldc + j;
            if (m == MR && n == NR) {
                UK(kc, ap, bp, c, ldc, alpha, beta);
            } else {
                UK(kc, ap, bp, tmp, NR, T(1), T(0));
                for (int64_t r = 0; r < m; ++r) {
                    T* cr = c + r * ldc;
                    const T* tr = tmp + r * NR;
                    if (beta == T(0))
                        for (int64_t q = 0; q < n; ++q) cr[q] = alpha * tr[q];
                    else
                        for (int64_t q = 0; q < n; ++q) cr[q] = alpha * tr[q] + beta * cr[q];
                }
            }
        }
    }
}

template <typename T, int MR, int NR, void (*UK)(int64_t, const T*, const T*, T*, int64_t, T, T)>
KernelSet<T> make_kernel_set(const char* name, int64_t kc, int64_t mc) {
    KernelSet<T> ks;
    ks.name = name;
    ks.mr = MR;
    ks.nr = NR;
    ks.kc = kc;
    ks.mc = mc;
    ks.pack_a = &pack_a_impl<T, MR>;
    ks.pack_b = &pack_b_impl<T, NR>;
    ks.macro = &macro_impl<T, MR, NR, UK>;
    return ks;
}

}  // namespace
}  // namespace gemmk
}  // namespace mnn
