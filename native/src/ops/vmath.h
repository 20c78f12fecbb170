// Vectorised float32 math kernels (exp, log, tanh, sigmoid, silu, gelu,
// gelu_tanh, erf, expm1, log1p, softplus) with run-time SIMD dispatch: one table of function pointers
// per CPU level (generic C++ that compilers auto-vectorise, AVX2+FMA,
// AVX-512F), chosen from active_level() (core/cpu.h) on every call, so
// MNN_CPU_LEVEL switches them in-process.  The algorithms and their error
// bounds are in vmath_impl.h; docs/architecture.md has the table.
#pragma once
#include <cstdint>

#include "core/cpu.h"

namespace mnn::vmath {

// y[i] = f(x[i]) for i in [0, n).  x and y may be the same array; no alignment
// required; single-threaded (callers split large arrays with parallel_for).
using UnaryF32 = void (*)(const float* x, float* y, int64_t n);

struct Table {
    UnaryF32 exp, log, tanh, sigmoid, silu, gelu, gelu_tanh, erf, expm1, log1p, softplus;
};

Table generic_table();
#if defined(MNN_GEMM_X86)
Table avx2_table();
Table avx512_table();
#endif

// The table for a level (a lower one when this build lacks it).
const Table& table(CpuLevel level);
inline const Table& table() { return table(active_level()); }

}  // namespace mnn::vmath
