// GEMM shared by matmul and convolution: packed, cache-blocked, with register
// micro-kernels chosen at run time for the CPU (generic C++, AVX2+FMA,
// AVX-512F; see gemm_kernels.h).  MNN_CPU_LEVEL=generic|avx2|avx512 in the
// environment caps the level (for tests and comparisons).
//
// Blocking (BLIS-style): K is cut into blocks of depth kc; all of op(B) for a
// column range is packed once into NR-wide panels (in parallel), then tasks of
// (row block x column range) pack their op(A) block into MR-high panels and run
// the micro-kernel over it, B panels outermost so one B panel stays in L1 while
// the A panels stream from L2.  Skinny products (one row or one column) skip
// packing.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <chrono>
#include <thread>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "ops/common.h"
#include "ops/gemm_ext.h"
#include "ops/gemm_kernels.h"

namespace mnn {

namespace {

template <typename T> const gemmk::KernelSet<T>& kernel_set(CpuLevel level);

template <>
const gemmk::KernelSet<float>& kernel_set<float>(CpuLevel level) {
    static const gemmk::KernelSet<float> generic = gemmk::generic_f32();
#if defined(MNN_GEMM_X86)
    static const gemmk::KernelSet<float> avx2 = gemmk::avx2_f32();
    static const gemmk::KernelSet<float> avx512 = gemmk::avx512_f32();
    if (level == CpuLevel::Avx512) return avx512;
    if (level == CpuLevel::Avx2) return avx2;
#endif
#if defined(__aarch64__)
    static const gemmk::KernelSet<float> neon = gemmk::neon_f32();
    if (level == CpuLevel::Neon) return neon;
#endif
    return generic;
}

template <>
const gemmk::KernelSet<double>& kernel_set<double>(CpuLevel level) {
    static const gemmk::KernelSet<double> generic = gemmk::generic_f64();
#if defined(MNN_GEMM_X86)
    static const gemmk::KernelSet<double> avx2 = gemmk::avx2_f64();
    static const gemmk::KernelSet<double> avx512 = gemmk::avx512_f64();
    if (level == CpuLevel::Avx512) return avx512;
    if (level == CpuLevel::Avx2) return avx2;
#endif
#if defined(__aarch64__)
    static const gemmk::KernelSet<double> neon = gemmk::neon_f64();
    if (level == CpuLevel::Neon) return neon;
#endif
    return generic;
}

// Packing scratch kept by each thread between calls (up to kKeepScratch bytes per slot): a fresh
// multi-megabyte buffer per call costs a page fault per 4 KiB page on first touch, several
// percent of a 1024-cube product.  A thread uses at most kScratchSlots at once (packed B and
// its own packed A block); more, or larger ones, are allocated per call.
constexpr int kScratchSlots = 3;
constexpr size_t kKeepScratch = size_t(40) << 20;

struct ScratchSlot {
    void* p = nullptr;
    size_t bytes = 0;
    bool busy = false;
    ~ScratchSlot() {
        if (p) ::operator delete(p, std::align_val_t(64));
    }
};
thread_local ScratchSlot t_scratch[kScratchSlots];

template <typename T>
struct Scratch {
    T* p = nullptr;
    ScratchSlot* slot = nullptr;
    explicit Scratch(size_t n) {
        const size_t bytes = n * sizeof(T);
        if (!bytes) return;
        if (bytes <= kKeepScratch)
            for (ScratchSlot& s : t_scratch)
                if (!s.busy) {
                    slot = &s;
                    break;
                }
        if (!slot) {
            p = static_cast<T*>(::operator new(bytes, std::align_val_t(64)));
            return;
        }
        if (slot->bytes < bytes) {
            if (slot->p) ::operator delete(slot->p, std::align_val_t(64));
            slot->p = nullptr;
            slot->bytes = 0;
            slot->p = ::operator new(bytes, std::align_val_t(64));
            slot->bytes = bytes;
        }
        slot->busy = true;
        p = static_cast<T*>(slot->p);
    }
    ~Scratch() {
        if (slot) slot->busy = false;
        else if (p) ::operator delete(p, std::align_val_t(64));
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
};

// ---- epilogues -------------------------------------------------------------------------------

// A GEMM epilogue as the driver carries it: the ops, and the same as the kernel's store
// program (operands at C's origin) when every op has a register form.
template <typename T>
struct Epi {
    const GemmEpilogue<T>* e = nullptr;
    gemmk::StoreEpi<T> prog;
    bool has_prog = false;
};

template <typename T>
bool store_program(const GemmEpilogue<T>& e, gemmk::StoreEpi<T>& s) {
    using SE = gemmk::StoreEpi<T>;
    s.n = 0;
    auto add = [&](typename SE::Op op, const T* ptr, int64_t ld, T c) {
        if (s.n == 6) return false;
        s.steps[s.n++] = {op, ptr, ld, c};
        return true;
    };
    for (int k = 0; k < e.n_ops; ++k) {
        const typename GemmEpilogue<T>::Op& op = e.ops[k];
        bool ok = false;
        switch (op.kind) {
            case EpilogueOp::Relu: ok = add(SE::Relu, nullptr, 0, T(0)); break;
            case EpilogueOp::Add:  // (x + y == y + x bit for bit: the operand's side does not matter)
                if (op.operand == EpilogueOp::Channel) ok = add(SE::AddCol, op.ptr, 0, T(0));
                else if (op.operand == EpilogueOp::Full) ok = add(SE::AddFull, op.ptr, op.ld, T(0));
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

// The epilogue, in place, on the finished block C[0:m, 0:n] whose first element is (i0, j0) of
// the product: op by op, row by row, each a vector loop over data still in cache.
template <typename T, typename F>
void epi_op_rows(const typename GemmEpilogue<T>::Op& op, int64_t i0, int64_t j0, int64_t m, int64_t n, T* C,
                 int64_t ldc, F f) {
    constexpr int L = 4;
    for (int64_t r = 0; r < m; ++r) {
        T* row = C + r * ldc;
        switch (op.operand) {
            case EpilogueOp::None: epi_span<T, L, false, false>(row, n, nullptr, T(0), f); break;
            case EpilogueOp::Scalar:
                if (op.swap) epi_span<T, L, false, true>(row, n, nullptr, op.ptr[0], f);
                else epi_span<T, L, false, false>(row, n, nullptr, op.ptr[0], f);
                break;
            case EpilogueOp::Channel:
            case EpilogueOp::Full: {
                const T* w = op.operand == EpilogueOp::Channel ? op.ptr + j0 : op.ptr + (i0 + r) * op.ld + j0;
                if (op.swap) epi_span<T, L, true, true>(row, n, w, T(0), f);
                else epi_span<T, L, true, false>(row, n, w, T(0), f);
                break;
            }
        }
    }
}

template <typename T>
void epi_block(const GemmEpilogue<T>& e, int64_t i0, int64_t j0, int64_t m, int64_t n, T* C, int64_t ldc) {
    for (int k = 0; k < e.n_ops; ++k) {
        const typename GemmEpilogue<T>::Op& op = e.ops[k];
        switch (op.kind) {
            case EpilogueOp::Relu: epi_op_rows<T>(op, i0, j0, m, n, C, ldc, EpiRelu()); break;
            case EpilogueOp::Add: epi_op_rows<T>(op, i0, j0, m, n, C, ldc, EpiAdd()); break;
            case EpilogueOp::Sub: epi_op_rows<T>(op, i0, j0, m, n, C, ldc, EpiSub()); break;
            case EpilogueOp::Mul: epi_op_rows<T>(op, i0, j0, m, n, C, ldc, EpiMul()); break;
            case EpilogueOp::Max: epi_op_rows<T>(op, i0, j0, m, n, C, ldc, EpiMax()); break;
            case EpilogueOp::Min: epi_op_rows<T>(op, i0, j0, m, n, C, ldc, EpiMin()); break;
        }
    }
}

// The last depth block of C[i0:i0+m, j0:j0+n] (C points at that block): the macro-kernel,
// finishing each tile through the epilogue (in registers where the kernel can, else on the
// block right after it is stored).
template <typename T>
void macro_last(const gemmk::KernelSet<T>& ks, const Epi<T>* epi, int64_t i0, int64_t j0, int64_t m, int64_t n,
                int64_t kc, const T* Ap, const T* Bp, T* C, int64_t ldc, T alpha, T beta) {
    if (!epi) return ks.macro(m, n, kc, Ap, Bp, C, ldc, alpha, beta);
    if (epi->has_prog && ks.macro_epi) {
        const gemmk::StoreEpi<T> local = epi->prog.at(i0, j0);
        return ks.macro_epi(m, n, kc, Ap, Bp, C, ldc, beta, &local);
    }
    ks.macro(m, n, kc, Ap, Bp, C, ldc, alpha, beta);
    epi_block(*epi->e, i0, j0, m, n, C, ldc);
}

constexpr int64_t kParallelFlops = int64_t(1) << 21;  // below this, one thread
constexpr int64_t kPackedBLimit = int64_t(32) << 20;  // bytes of packed B per column chunk

template <typename T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
    for (int64_t m = 0; m < M; ++m) {
        T* c = C + m * ldc;
        if (beta == T(0)) std::fill(c, c + N, T(0));
        else if (beta != T(1)) for (int64_t n = 0; n < N; ++n) c[n] *= beta;
    }
}

// Dot product with independent partial sums (so the compiler vectorises it).
template <typename T>
T dot(const T* a, const T* b, int64_t n) {
    T s[8] = {};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; ++j) s[j] += a[k + j] * b[k + j];
    T r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; k < n; ++k) r += a[k] * b[k];
    return r;
}

// Tiny products: plain loops, no packing.
template <typename T>
void gemm_small(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                int64_t ldb, T beta, T* C, int64_t ldc) {
    T acc[64];
    for (int64_t m = 0; m < M; ++m) {
        T* c = C + m * ldc;
        for (int64_t n0 = 0; n0 < N; n0 += 64) {
            int64_t nn = std::min<int64_t>(64, N - n0);
            std::fill(acc, acc + nn, T(0));
            for (int64_t k = 0; k < K; ++k) {
                T a = ta ? A[k * lda + m] : A[m * lda + k];
                if (!tb) {
                    const T* b = B + k * ldb + n0;
                    for (int64_t n = 0; n < nn; ++n) acc[n] += a * b[n];
                } else {
                    const T* b = B + n0 * ldb + k;
                    for (int64_t n = 0; n < nn; ++n) acc[n] += a * b[n * ldb];
                }
            }
            for (int64_t n = 0; n < nn; ++n) c[n0 + n] = alpha * acc[n] + (beta == T(0) ? T(0) : beta * c[n0 + n]);
        }
    }
}

// C[M, 1] = alpha * op(A) @ b + beta * C, b = column 0 of op(B).
template <typename T>
void gemv_col(bool ta, bool tb, int64_t M, int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb,
              T beta, T* C, int64_t ldc) {
    std::unique_ptr<T[]> tmp;
    const T* b = B;
    if (!tb && ldb != 1 && K > 1) {  // column of a row-major K x N matrix: gather it
        tmp.reset(new T[size_t(K)]);
        for (int64_t k = 0; k < K; ++k) tmp[k] = B[k * ldb];
        b = tmp.get();
    }
    if (!ta) {
        parallel_for(M, std::max<int64_t>(1, 65536 / std::max<int64_t>(K, 1)), [&](int64_t m0, int64_t m1) {
            for (int64_t m = m0; m < m1; ++m) {
                T v = alpha * dot(A + m * lda, b, K);
                C[m * ldc] = beta == T(0) ? v : v + beta * C[m * ldc];
            }
        });
    } else {  // A stored K x M: axpy over its rows
        parallel_for(M, std::max<int64_t>(256, 65536 / std::max<int64_t>(K, 1)), [&](int64_t m0, int64_t m1) {
            int64_t n = m1 - m0;
            std::unique_ptr<T[]> acc(new T[size_t(n)]());
            for (int64_t k = 0; k < K; ++k) {
                const T* a = A + k * lda + m0;
                T bk = b[k];
                for (int64_t i = 0; i < n; ++i) acc[i] += a[i] * bk;
            }
            for (int64_t i = 0; i < n; ++i) {
                T* c = C + (m0 + i) * ldc;
                *c = beta == T(0) ? alpha * acc[i] : alpha * acc[i] + beta * *c;
            }
        });
    }
}

// C[1, N] = alpha * a @ op(B) + beta * C, a = row 0 of op(A).
template <typename T>
void gemv_row(bool ta, bool tb, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb,
              T beta, T* C) {
    std::unique_ptr<T[]> tmp;
    const T* a = A;
    if (ta && lda != 1 && K > 1) {
        tmp.reset(new T[size_t(K)]);
        for (int64_t k = 0; k < K; ++k) tmp[k] = A[k * lda];
        a = tmp.get();
    }
    if (tb) {  // B stored N x K: one dot per output
        parallel_for(N, std::max<int64_t>(1, 65536 / std::max<int64_t>(K, 1)), [&](int64_t n0, int64_t n1) {
            for (int64_t n = n0; n < n1; ++n) {
                T v = alpha * dot(B + n * ldb, a, K);
                C[n] = beta == T(0) ? v : v + beta * C[n];
            }
        });
    } else {  // axpy over the rows of B
        parallel_for(N, std::max<int64_t>(256, 65536 / std::max<int64_t>(K, 1)), [&](int64_t n0, int64_t n1) {
            int64_t n = n1 - n0;
            std::unique_ptr<T[]> acc(new T[size_t(n)]());
            for (int64_t k = 0; k < K; ++k) {
                const T* b = B + k * ldb + n0;
                T ak = a[k];
                for (int64_t i = 0; i < n; ++i) acc[i] += ak * b[i];
            }
            for (int64_t i = 0; i < n; ++i) C[n0 + i] = beta == T(0) ? alpha * acc[i] : alpha * acc[i] + beta * C[n0 + i];
        });
    }
}

// A phase of tasks shared by the threads of one parallel region: tasks are
// claimed from `next`, and `done` counts finished ones so a thread can wait
// for the phase to end (a barrier that only waits on work already claimed).
struct Phase {
    std::atomic<int64_t> next{0}, done{0};
    int64_t n = 0;
    template <typename F>
    void run(F&& task) {
        for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < n;) {
            task(t);
            done.fetch_add(1, std::memory_order_release);
        }
    }
    void wait() const {
        for (int spin = 0; done.load(std::memory_order_acquire) < n; ++spin)
            if (spin > 64) std::this_thread::yield();
    }
};

// Short-and-wide products (all rows in one cache block, e.g. convolution's
// [out channels x pixels]): op(A) is packed once, whole; each B panel is
// packed right before use into a small per-thread buffer and meets every row,
// so packed B never leaves L1/L2.  Threads split the columns.
template <typename T, typename PackB>
void gemm_stream_b(const gemmk::KernelSet<T>& ks, int64_t kc_block, bool ta, int64_t M, int64_t N, int64_t K, T alpha,
                   const T* A, int64_t lda, const PackB& pack_b, T beta, T* C, int64_t ldc, const Epi<T>* epi) {
    const int64_t MR = ks.mr, NR = ks.nr;
    const int threads = std::max(1, get_thread_number());
    const bool parallel = threads > 1 && 2 * M * N * K >= kParallelFlops;
    const int64_t nk = (K + kc_block - 1) / kc_block, kc_max = (K + nk - 1) / nk;
    const int64_t mpad = (M + MR - 1) / MR * MR;
    Scratch<T> apack(size_t(mpad * K));  // depth block p at apack + pc * mpad
    // Tasks of a few column panels (one panel each when single-threaded).
    const int64_t npanels = (N + NR - 1) / NR;
    const int64_t group = parallel ? std::max<int64_t>(1, std::min<int64_t>(8, npanels / (8 * threads))) : npanels;
    Phase pack_a, mul;
    pack_a.n = nk;
    mul.n = (npanels + group - 1) / group;
    auto body = [&](int64_t, int64_t) {
        pack_a.run([&](int64_t p) {
            int64_t pc = p * kc_max, kc = std::min(kc_max, K - pc);
            ks.pack_a(ta, ta ? A + pc * lda : A + pc, lda, M, kc, apack.p + pc * mpad);
        });
        pack_a.wait();
        Scratch<T> bpanel(size_t(kc_max * NR));
        mul.run([&](int64_t t) {
            for (int64_t q = t * group, q1 = std::min(npanels, q + group); q < q1; ++q) {
                int64_t j = q * NR, n = std::min(NR, N - j);
                for (int64_t p = 0; p < nk; ++p) {
                    int64_t pc = p * kc_max, kc = std::min(kc_max, K - pc);
                    pack_b(pc, kc, j, n, bpanel.p);
                    if (p + 1 < nk) ks.macro(M, n, kc, apack.p + pc * mpad, bpanel.p, C + j, ldc, alpha, p == 0 ? beta : T(1));
                    else macro_last(ks, epi, 0, j, M, n, kc, apack.p + pc * mpad, bpanel.p, C + j, ldc, alpha,
                                    p == 0 ? beta : T(1));
                }
            }
        });
    };
    parallel_for(parallel ? threads : 1, 1, body);
}

// pack_b(k0, kc, j0, n, dst) packs op(B)[k0:k0+kc, j0:j0+n] as one NR-wide panel.  `plain`: a
// product of stored matrices (gemm()), blocked by the kernel set's gemm_kc / gemm_mc when it has
// them; otherwise (conv's packed-on-the-fly B) by kc / mc.
//
// Braw (op(B) = B, stored with row stride ldb) with a kernel set that has macro_pack_b: no
// packing phase; the first task to reach a B panel packs it while its first row panel uses it
// (the copy rides along with the FMAs), the others wait for it if they get there meanwhile.
template <typename T, typename PackB>
void gemm_packed(const gemmk::KernelSet<T>& ks, bool plain, bool ta, int64_t M, int64_t N, int64_t K, T alpha,
                 const T* A, int64_t lda, const PackB& pack_b, T beta, T* C, int64_t ldc, const Epi<T>* epi = nullptr,
                 const T* Braw = nullptr, int64_t ldb = 0) {
    const int64_t kc_block = plain && ks.gemm_kc > 0 ? ks.gemm_kc : ks.kc;
    const int64_t mc_block = plain && ks.gemm_mc > 0 ? ks.gemm_mc : ks.mc;
    if (M <= mc_block && N >= 4 * ks.nr)
        return gemm_stream_b(ks, kc_block, ta, M, N, K, alpha, A, lda, pack_b, beta, C, ldc, epi);
    const int64_t MR = ks.mr, NR = ks.nr;
    const int threads = std::max(1, get_thread_number());
    const bool parallel = threads > 1 && 2 * M * N * K >= kParallelFlops;

    // Depth blocks of (nearly) equal size.
    const int64_t nk = (K + kc_block - 1) / kc_block;
    const int64_t kc_max = (K + nk - 1) / nk;

    // Column chunks bound the packed-B buffer.
    int64_t nc_max = std::max<int64_t>(NR, (kPackedBLimit / int64_t(sizeof(T)) / K) / NR * NR);
    nc_max = std::min(nc_max, (N + NR - 1) / NR * NR);
    const int64_t n_chunks = (N + nc_max - 1) / nc_max;
    Scratch<T> bpack(size_t(K * nc_max));

    // Row blocks: about mc rows each, a multiple of the thread count when few.  Then the rows
    // are cut into `groups` (one per thread) of equal rows, each into n_ic / groups blocks of
    // whole MR panels but its last, and task b takes block b / groups of group b % groups: the
    // threads work through equal shares side by side (blocks of whole panels overall would
    // differ by a panel, and whoever claimed the larger ones finished a panel late).
    const int64_t mpanels = (M + MR - 1) / MR;
    const int64_t panels_per_block = std::max<int64_t>(1, mc_block / MR);
    int64_t n_ic = (mpanels + panels_per_block - 1) / panels_per_block;
    if (parallel && n_ic < 4 * threads) n_ic = std::min(mpanels, (n_ic + threads - 1) / threads * threads);
    const int64_t groups = parallel && n_ic % threads == 0 && M >= 4 * MR * n_ic ? threads : 1;
    const int64_t per_group = n_ic / groups, group_panels = ((M + groups - 1) / groups + MR - 1) / MR;
    const int64_t block_rows = (group_panels + per_group - 1) / per_group * MR;  // upper bound of an A block's rows
    auto row_block = [&](int64_t t, int64_t& i0, int64_t& i1) {
        const int64_t g = t % groups, b = t / groups, g0 = g * M / groups, g1 = (g + 1) * M / groups;
        const int64_t gp = (g1 - g0 + MR - 1) / MR;
        i0 = g0 + b * gp / per_group * MR;
        i1 = std::min(g1, g0 + (b + 1) * gp / per_group * MR);
    };

    // Per column chunk: phase 1 packs op(B)[:, jc:jc+nc] (depth block p at
    // bpack + pc * npad; skipped when B is packed while used), phase 2 runs (row
    // block x column part) tasks, enough of them, in a multiple of the thread
    // count, to keep every thread busy.
    std::unique_ptr<Phase[]> pack_phase(new Phase[size_t(n_chunks)]), mul_phase(new Phase[size_t(n_chunks)]);
    std::unique_ptr<int64_t[]> n_jc(new int64_t[size_t(n_chunks)]);
    for (int64_t c = 0; c < n_chunks; ++c) {
        const int64_t nc = std::min(nc_max, N - c * nc_max), npanels = (nc + NR - 1) / NR;
        int64_t parts = 1;
        if (parallel) {
            if (n_ic < 2 * threads) parts = std::min(npanels, (2 * threads + n_ic - 1) / n_ic);
            while ((n_ic * parts) % threads != 0 && n_ic * parts < 8 * threads && parts < npanels) ++parts;
        }
        n_jc[c] = parts;
        pack_phase[c].n = nk * npanels;
        mul_phase[c].n = n_ic * parts;
    }

    // Fused packing: per (chunk, depth block, panel) 0 = not packed, 1 = being packed, 2 = packed.
    const bool fuse = Braw && ks.macro_pack_b;
    const int64_t max_panels = (nc_max + NR - 1) / NR;
    std::unique_ptr<std::atomic<int>[]> panel_state(fuse ? new std::atomic<int>[size_t(n_chunks * nk * max_panels)]()
                                                         : nullptr);

    auto body = [&](int64_t, int64_t) {
        Scratch<T> apack(size_t(block_rows * kc_max));
        for (int64_t c = 0; c < n_chunks; ++c) {
            const int64_t jc = c * nc_max, nc = std::min(nc_max, N - jc);
            const int64_t npanels = (nc + NR - 1) / NR, npad = npanels * NR, parts = n_jc[c];
            if (c > 0) mul_phase[c - 1].wait();  // bpack is about to be overwritten
            if (!fuse) {
                pack_phase[c].run([&](int64_t t) {
                    int64_t p = t / npanels, q = t % npanels;
                    int64_t pc = p * kc_max, kc = std::min(kc_max, K - pc), j = q * NR;
                    pack_b(pc, kc, jc + j, std::min(NR, nc - j), bpack.p + pc * npad + j * kc);
                });
                pack_phase[c].wait();
            }
            mul_phase[c].run([&](int64_t t) {
                int64_t bi = t / parts, bj = t % parts, i0, i1;
                row_block(bi, i0, i1);
                int64_t q0 = bj * npanels / parts, q1 = (bj + 1) * npanels / parts;
                if (i0 >= i1 || q0 >= q1) return;
                int64_t j0 = q0 * NR, j1 = std::min(nc, q1 * NR);
                const int64_t m = i1 - i0;
                for (int64_t p = 0; p < nk; ++p) {
                    int64_t pc = p * kc_max, kc = std::min(kc_max, K - pc);
                    const T* src = ta ? A + pc * lda + i0 : A + i0 * lda + pc;
                    ks.pack_a(ta, src, lda, m, kc, apack.p);
                    const T b = p == 0 ? beta : T(1);
                    const bool last = p + 1 == nk;
                    T* const bp0 = bpack.p + pc * npad;
                    if (!fuse) {
                        if (!last) ks.macro(m, j1 - j0, kc, apack.p, bp0 + j0 * kc, C + i0 * ldc + jc + j0, ldc, alpha, b);
                        else macro_last(ks, epi, i0, jc + j0, m, j1 - j0, kc, apack.p, bp0 + j0 * kc, C + i0 * ldc + jc + j0,
                                        ldc, alpha, b);
                        continue;
                    }
                    // Groups start at staggered panels, so the threads' first passes pack different
                    // panels side by side instead of waiting on each other's.
                    const int64_t span = q1 - q0, start = bi % groups * span / groups;
                    for (int64_t r = 0; r < span; ++r) {
                        const int64_t q = q0 + (start + r) % span;
                        const int64_t j = q * NR, n = std::min(NR, nc - j);
                        T* bp = bp0 + j * kc;
                        T* cq = C + i0 * ldc + jc + j;
                        const T* next = q + 1 < npanels ? bp + NR * kc : nullptr;
                        std::atomic<int>& state = panel_state[size_t((c * nk + p) * max_panels + q)];
                        int expect = 0;
                        if (state.load(std::memory_order_acquire) == 0 &&
                            state.compare_exchange_strong(expect, 1, std::memory_order_acq_rel)) {
                            // (a last block's epilogue must have a register form to ride along)
                            const bool prog = last && epi;
                            if (n == NR && !(prog && !(epi->has_prog && ks.macro_epi))) {
                                gemmk::StoreEpi<T> local;
                                if (prog) local = epi->prog.at(i0, jc + j);
                                ks.macro_pack_b(m, kc, apack.p, Braw + pc * ldb + jc + j, ldb, bp, cq, ldc, alpha, b,
                                                prog ? &local : nullptr, next);
                                state.store(2, std::memory_order_release);
                                continue;
                            }
                            pack_b(pc, kc, jc + j, n, bp);
                            state.store(2, std::memory_order_release);
                        } else {
                            for (int spin = 0; state.load(std::memory_order_acquire) != 2; ++spin)
                                if (spin > 64) std::this_thread::yield();
                        }
                        if (!last || !epi) {
                            if (ks.macro_next) ks.macro_next(m, n, kc, apack.p, bp, cq, ldc, alpha, b, next);
                            else ks.macro(m, n, kc, apack.p, bp, cq, ldc, alpha, b);
                        } else {
                            macro_last(ks, epi, i0, jc + j, m, n, kc, apack.p, bp, cq, ldc, alpha, b);
                        }
                    }
                }
            });
        }
    };
    // One region: each participant (one per thread) works through the phases
    // in order; nested or single-threaded calls run it once, inline.
    parallel_for(parallel ? threads : 1, 1, body);
}

// Products whose op(B) is stored row-major and small (in L1/L2 anyway): B is read in place by
// the kernel (ks.macro_direct_b), only A is packed, by each task for its own rows.  Tasks are
// row blocks (several per thread when parallel).
constexpr int64_t kDirectBBytes = int64_t(128) << 10;

template <typename T>
void gemm_direct_b(const gemmk::KernelSet<T>& ks, bool ta, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                   int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, const Epi<T>* epi) {
    const int64_t MR = ks.mr;
    const int threads = std::max(1, get_thread_number());
    const bool parallel = threads > 1 && 2 * M * N * K >= kParallelFlops;
    const int64_t kcap = std::min(ks.kc, ks.direct_max_kc);
    const int64_t nk = (K + kcap - 1) / kcap, kc_max = (K + nk - 1) / nk;
    const int64_t mpanels = (M + MR - 1) / MR;
    int64_t tasks = (mpanels * MR + ks.mc - 1) / ks.mc;
    if (parallel) tasks = std::min(mpanels, std::max<int64_t>(tasks, 2 * threads));
    const bool prog = epi && epi->has_prog;
    auto run = [&](int64_t t0, int64_t t1) {
        const int64_t p0 = t0 * mpanels / tasks, p1 = t1 * mpanels / tasks;
        Scratch<T> apack(size_t((p1 - p0) * MR * kc_max));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t i0 = t * mpanels / tasks * MR, i1 = std::min(M, (t + 1) * mpanels / tasks * MR);
            if (i0 >= i1) continue;
            for (int64_t p = 0; p < nk; ++p) {
                const int64_t pc = p * kc_max, kc = std::min(kc_max, K - pc);
                ks.pack_a(ta, ta ? A + pc * lda + i0 : A + i0 * lda + pc, lda, i1 - i0, kc, apack.p);
                const T b = p == 0 ? beta : T(1);
                T* c = C + i0 * ldc;
                if (p + 1 < nk || !epi) {
                    ks.macro_direct_b(i1 - i0, N, kc, apack.p, B + pc * ldb, ldb, c, ldc, alpha, b, nullptr);
                } else if (prog) {
                    const gemmk::StoreEpi<T> local = epi->prog.at(i0, 0);
                    ks.macro_direct_b(i1 - i0, N, kc, apack.p, B + pc * ldb, ldb, c, ldc, alpha, b, &local);
                } else {
                    ks.macro_direct_b(i1 - i0, N, kc, apack.p, B + pc * ldb, ldb, c, ldc, alpha, b, nullptr);
                    epi_block(*epi->e, i0, 0, i1 - i0, N, c, ldc);
                }
            }
        }
    };
    if (parallel) parallel_for(tasks, 1, run);
    else run(0, tasks);
}

template <typename T>
void gemm_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
               int64_t ldb, T beta, T* C, int64_t ldc, const Epi<T>* epi) {
    if (M <= 0 || N <= 0) return;
    // Paths without a packed macro-kernel finish C, then run the epilogue over it.
    auto whole = [&] { if (epi) epi_block(*epi->e, 0, 0, M, N, C, ldc); };
    if (K <= 0 || alpha == T(0)) {
        scale_c(M, N, beta, C, ldc);
        return whole();
    }
    if (M * N * K <= 4096) {
        gemm_small(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return whole();
    }
    if (N == 1) {
        gemv_col(ta, tb, M, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return whole();
    }
    if (M == 1) {
        gemv_row(ta, tb, N, K, alpha, A, lda, B, ldb, beta, C);
        return whole();
    }
    const gemmk::KernelSet<T>& ks = kernel_set<T>(active_level());
    if (!tb && ks.macro_direct_b && K * N * int64_t(sizeof(T)) <= kDirectBBytes && (!epi || alpha == T(1)))
        return gemm_direct_b(ks, ta, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epi);
    auto pack_b = [&](int64_t k0, int64_t kc, int64_t j0, int64_t n, T* dst) {
        ks.pack_b(tb, tb ? B + j0 * ldb + k0 : B + k0 * ldb + j0, ldb, kc, n, dst);
    };
    gemm_packed(ks, true, ta, M, N, K, alpha, A, lda, pack_b, beta, C, ldc, epi, tb ? nullptr : B, ldb);
}

}  // namespace

template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb,
          T beta, T* C, int64_t ldc) {
    gemm_impl<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr);
}

template <typename T>
void gemm_epilogue(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                   int64_t ldb, T* C, int64_t ldc, const GemmEpilogue<T>& e) {
    if (e.n_ops == 0) return gemm_impl<T>(ta, tb, M, N, K, T(1), A, lda, B, ldb, T(0), C, ldc, nullptr);
    Epi<T> epi;
    epi.e = &e;
    epi.has_prog = store_program(e, epi.prog);
    gemm_impl<T>(ta, tb, M, N, K, T(1), A, lda, B, ldb, T(0), C, ldc, &epi);
}
template void gemm_epilogue<float>(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t,
                                   float*, int64_t, const GemmEpilogue<float>&);
template void gemm_epilogue<double>(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t, const double*,
                                    int64_t, double*, int64_t, const GemmEpilogue<double>&);

// ---- the measured FMA peak --------------------------------------------------------------------

namespace {
// The FMA probe of the active CPU level and its multiply-adds per round.
void fma_probe(float (*&probe)(int64_t), int& lanes) {
    probe = &gemmk::generic_fma_probe;
    lanes = gemmk::generic_fma_lanes();
#if defined(MNN_GEMM_X86)
    if (active_level() == CpuLevel::Avx512) {
        probe = &gemmk::avx512_fma_probe;
        lanes = gemmk::avx512_fma_lanes();
    } else if (active_level() == CpuLevel::Avx2) {
        probe = &gemmk::avx2_fma_probe;
        lanes = gemmk::avx2_fma_lanes();
    }
#endif
}
volatile float g_fma_sink = 0;  // keeps the probes' results alive
}  // namespace

int64_t gemm_fma_run(int64_t flops) {
    float (*probe)(int64_t);
    int lanes;
    fma_probe(probe, lanes);
    const int threads = std::max(1, get_thread_number());
    const int64_t iters = std::max<int64_t>(1, flops / (2 * int64_t(lanes) * threads));
    parallel_for(threads, 1, [&](int64_t b, int64_t e) {
        float s = 0;
        for (int64_t i = b; i < e; ++i) s += probe(iters);
        g_fma_sink = g_fma_sink + s;
    });
    return 2 * iters * lanes * threads;
}

FmaPeak gemm_fma_peak(int threads, double seconds) {
    FmaPeak r;
    float (*probe)(int64_t);
    int lanes;
    fma_probe(probe, lanes);
    r.level = cpu_level_name(active_level());
    r.lanes = lanes;
    r.threads = std::max(1, std::min(threads, get_thread_number()));
    using Clock = std::chrono::steady_clock;
    auto secs = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
    // Calibrate on one thread, then repeats of about 10 ms each: the best of many short runs is
    // what the machine sustains when nothing else holds its cores (on a shared machine a long
    // run measures the other processes too).
    int64_t iters = 1 << 12;
    double t = 0;
    for (;;) {
        Clock::time_point t0 = Clock::now();
        g_fma_sink = g_fma_sink + probe(iters);
        t = secs(t0);
        if (t >= 0.002 || iters >= (int64_t(1) << 40)) break;
        iters *= 2;
    }
    const double each = std::min(0.01, seconds / 3);
    const int repeats = std::max(3, int(seconds / each));
    iters = std::max<int64_t>(1, int64_t(double(iters) * each / std::max(t, 1e-9)));
    double best = 0;
    for (int rep = 0; rep < repeats; ++rep) {
        Clock::time_point t0 = Clock::now();
        parallel_for(r.threads, 1, [&](int64_t b, int64_t e) {
            float s = 0;
            for (int64_t i = b; i < e; ++i) s += probe(iters);
            g_fma_sink = g_fma_sink + s;
        });
        const double w = secs(t0);
        const double gf = 2.0 * double(iters) * lanes * r.threads / w / 1e9;
        if (gf > best) {
            best = gf;
            r.seconds = w;
        }
    }
    r.gflops = best;
    return r;
}

template <typename T>
void gemm_pack_b(bool ta, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, GemmPackB<T> pack_b,
                 const void* ctx, T beta, T* C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == T(0)) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    const gemmk::KernelSet<T>& ks = kernel_set<T>(active_level());
    const int64_t nr = ks.nr;
    auto pack = [&](int64_t k0, int64_t kc, int64_t j0, int64_t n, T* dst) { pack_b(ctx, k0, kc, j0, n, nr, dst); };
    gemm_packed(ks, false, ta, M, N, K, alpha, A, lda, pack, beta, C, ldc);
}

const char* gemm_cpu_level() { return cpu_level_name(active_level()); }

template <typename T>
const gemmk::KernelSet<T>& gemm_kernel_set(CpuLevel level) {
    return kernel_set<T>(level);
}
template const gemmk::KernelSet<float>& gemm_kernel_set<float>(CpuLevel);
template const gemmk::KernelSet<double>& gemm_kernel_set<double>(CpuLevel);

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);
template void gemm_pack_b<float>(bool, int64_t, int64_t, int64_t, float, const float*, int64_t, GemmPackB<float>,
                                 const void*, float, float*, int64_t);
template void gemm_pack_b<double>(bool, int64_t, int64_t, int64_t, double, const double*, int64_t, GemmPackB<double>,
                                  const void*, double, double*, int64_t);

}  // namespace mnn
