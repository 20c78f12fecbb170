// Internal interface between the GEMM driver (gemm.cc) and its per-ISA
// kernel files (gemm_generic.cc, gemm_avx2.cc, gemm_avx512.cc, gemm_neon.cc).
//
// The ISA files are compiled with their own -m flags and must stay free of
// anything that could be shared across translation units (no standard-library
// templates, everything but the *_kernels() getters with internal linkage),
// so that no AVX-512 code can leak into the generic path through the linker's
// choice of a duplicated inline function.
#pragma once
#include <cstdint>

namespace mnn {
namespace gemmk {

// A short program applied to a tile's final values in registers, before they are stored
// (convolution epilogues, ops/conv_epilogue.h): each step one of
//   AddRow  x += row_values[row]            (bias, a per-channel operand)
//   AddFull x += full[row * ld + col]       (a residual)
//   AddCol  x += col_values[col]            (a matmul's bias: one value per output column)
//   Relu    x = x > 0 ? x : 0
//   MaxC    x = c > x ? c : x               (maximum with a value neither NaN nor zero)
//   MinC    x = c < x ? c : x               (minimum with such a value)
//   MaxPZ   x = (x > 0 || x != x) ? x : +0  (maximum with +0.0)
// Row and column indices are relative to the C pointer given to macro_epi.
template <typename T>
struct StoreEpi {
    enum Op : uint8_t { AddRow, AddFull, Relu, MaxC, MinC, MaxPZ, AddCol };
    struct Step {
        Op op;
        const T* ptr;  // AddRow: one value per row; AddCol: one per column; AddFull: the tensor (row stride ld)
        int64_t ld;
        T c;
    };
    Step steps[6];
    int n = 0;
    // The same program for the block whose first element is (i0, j0) of this one.
    StoreEpi at(int64_t i0, int64_t j0) const {
        StoreEpi r = *this;
        for (int s = 0; s < r.n; ++s) {
            Step& st = r.steps[s];
            if (st.op == AddRow) st.ptr += i0;
            else if (st.op == AddCol) st.ptr += j0;
            else if (st.op == AddFull) st.ptr += i0 * st.ld + j0;
        }
        return r;
    }
};

// A kernel set: register tile MR x NR, cache blocks and the three routines the
// driver needs.  Packed panels are zero-padded to full MR / NR and 64-byte
// aligned; the driver allocates them.
template <typename T>
struct KernelSet {
    const char* name;
    int mr, nr;
    int64_t kc;  // depth of a packed block
    int64_t mc;  // rows of a packed A block (a multiple of mr)
    // Ap <- op(A)[0:mc, 0:kc] in panels of MR rows: Ap[p*MR*kc + k*MR + i].
    // trans = false: element (i, k) at A[i*lda + k]; true: at A[k*lda + i].
    void (*pack_a)(bool trans, const T* A, int64_t lda, int64_t mc, int64_t kc, T* Ap);
    // Bp <- op(B)[0:kc, 0:nc] in panels of NR columns: Bp[q*NR*kc + k*NR + j].
    // trans = false: element (k, j) at B[k*ldb + j]; true: at B[j*ldb + k].
    void (*pack_b)(bool trans, const T* B, int64_t ldb, int64_t kc, int64_t nc, T* Bp);
    // C[0:mc, 0:nc] = alpha * Ap @ Bp + beta * C (C is never read when beta == 0).
    void (*macro)(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T alpha, T beta);
    // macro, also fetching `next` (a B panel of the same depth the caller uses next) into L2 while
    // it runs; null when the kernel set has no such prefetch (then call macro).
    void (*macro_next)(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T alpha,
                       T beta, const T* next) = nullptr;
    // macro with alpha = 1, then `epi` applied in registers before the store; null when the
    // kernel set has none (the caller then finishes the tile itself).
    void (*macro_epi)(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T beta,
                      const StoreEpi<T>* epi) = nullptr;
    // macro with B read in place instead of packed: op(B) not transposed, element (k, j) at
    // B[k*ldb + j], kc <= direct_max_kc; `epi` as macro_epi (alpha must then be 1) or null.
    // Null when the kernel set has none.
    void (*macro_direct_b)(int64_t mc, int64_t nc, int64_t kc, const T* Ap, const T* B, int64_t ldb, T* C,
                           int64_t ldc, T alpha, T beta, const StoreEpi<T>* epi) = nullptr;
    int64_t direct_max_kc = 0;
    // One whole NR-column panel of op(B) not transposed (element (k, j) at B[k*ldb + j]) packed
    // into Bp while the first row panel uses it in place, then C[0:mc, 0:NR] as macro_epi (epi
    // given, alpha 1) or macro over Bp, fetching `next` as macro_next does; null when the kernel
    // set has none.
    void (*macro_pack_b)(int64_t mc, int64_t kc, const T* Ap, const T* B, int64_t ldb, T* Bp, T* C, int64_t ldc,
                         T alpha, T beta, const StoreEpi<T>* epi, const T* next) = nullptr;
    // Blocks for products of stored matrices (gemm()) where they differ from kc / mc (0: the
    // same); kc / mc stay what convolution's packed weights are laid out by.
    int64_t gemm_kc = 0, gemm_mc = 0;
};

// FMA-throughput probes (the machine's achievable float32 peak, gemm_fma_peak in gemm.cc):
// `iters` rounds of independent multiply-adds x = x * a + b on many accumulators (whole
// vectors of the ISA, enough of them to cover the FMA latency on every pipe), no memory
// traffic; returns a value derived from the results so the work cannot be optimised away.
// *_fma_lanes() is the float32 multiply-adds per round (accumulators x lanes), so a probe
// does 2 * iters * lanes floating-point operations.
float generic_fma_probe(int64_t iters);
int generic_fma_lanes();
#if defined(MNN_GEMM_X86)
float avx2_fma_probe(int64_t iters);
int avx2_fma_lanes();
float avx512_fma_probe(int64_t iters);
int avx512_fma_lanes();
#endif

KernelSet<float> generic_f32();
KernelSet<double> generic_f64();
#if defined(MNN_GEMM_X86)
KernelSet<float> avx2_f32();
KernelSet<double> avx2_f64();
KernelSet<float> avx512_f32();
KernelSet<double> avx512_f64();
#endif
#if defined(__aarch64__)
KernelSet<float> neon_f32();
KernelSet<double> neon_f64();
#endif

}  // namespace gemmk
}  // namespace mnn
