// GEMM entry points beyond ops/common.h's gemm(): the measured FMA peak (bench/suite.py's
// header) and GEMM with an epilogue (the matmul_epilogue pass, graph/fuse_epilogue.cc).
#pragma once
#include <cstdint>
#include <vector>

#include "core/attrs.h"
#include "core/tensor.h"
#include "ops/conv_epilogue.h"

namespace mnn {

// The float32 FLOP rate this machine sustains on pure multiply-adds: a register-only FMA
// loop (gemmk::*_fma_probe) at the active CPU level, run on `threads` threads of the pool
// at once, best of repeats of about 10 ms over about `seconds` in all.
struct FmaPeak {
    double gflops = 0;       // all threads together
    int threads = 0;         // threads that ran (the pool's size caps it)
    const char* level = "";  // "generic", "avx2", "avx512"
    int lanes = 0;           // float32 multiply-adds per probe round (accumulators x vector lanes)
    double seconds = 0;      // the best repeat's wall time
};
FmaPeak gemm_fma_peak(int threads, double seconds);

// The same FMA loop doing about `flops` floating-point operations split over all the pool's
// threads (so it can be timed side by side with a GEMM of that many operations); returns the
// operations it did.
int64_t gemm_fma_run(int64_t flops);

// An elementwise chain applied to a GEMM's output C[M, N] as it is stored (same bits as the
// ops run one after another on the finished C).  Operands: one value (Scalar), one value per
// column (Channel: ptr[col]) or a matrix like C (Full: ptr[row * ld + col]).
template <typename T>
struct GemmEpilogue {
    struct Op {
        EpilogueOp::Kind kind = EpilogueOp::Relu;
        EpilogueOp::Operand operand = EpilogueOp::None;
        bool swap = false;  // the operand is the op's first input
        const T* ptr = nullptr;
        int64_t ld = 0;  // Full: row stride
    };
    Op ops[kMaxEpilogueOps];
    int n_ops = 0;
};

// C[M, N] = epi(op(A) @ op(B)) (row-major, leading dims as gemm()).
template <typename T>
void gemm_epilogue(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                   int64_t ldb, T* C, int64_t ldc, const GemmEpilogue<T>& epi);

// matmul(ins[0], ins[1]) (attrs: transpose_a / transpose_b; both operands of ndim >= 2)
// followed by `epi`'s ops (operands among `ins`; Channel: one value per output column), into
// `out` (allocated by the caller with matmul's output info).  float32 / float64; the same
// bits as the unfused ops.  Implemented in ops/linalg.cc.
void matmul_fused(const Attrs& attrs, const std::vector<Tensor>& ins, const ConvEpilogue& epi, Tensor& out);

}  // namespace mnn
