// CPU feature level for run-time kernel dispatch (GEMM, vector math).  One
// source of truth: every family that has per-ISA kernels asks active_level().
#pragma once

namespace mnn {

// Levels are ordered within one architecture: x86-64 has Generic < Avx2 < Avx512,
// AArch64 has Generic < Neon.
enum class CpuLevel { Generic = 0, Avx2 = 1, Avx512 = 2, Neon = 3 };

// What this CPU supports (cpuid via __builtin_cpu_supports on x86 builds with
// MNN_GEMM_X86; Neon on AArch64, where Advanced SIMD is baseline; Generic
// elsewhere).  Avx2 means AVX2+FMA; Avx512 means AVX-512F on top of that.
// Computed once.
CpuLevel hardware_level();

// The hardware level, capped by the environment variable
// MNN_CPU_LEVEL=generic|avx2|avx512|neon (read on every call: cheap, and lets a
// test switch levels in-process).  Unknown values, and another architecture's
// levels, are ignored.  Families without a kernel for a level use the portable
// one (compiled for the baseline ISA, which the compiler vectorises).
CpuLevel active_level();

const char* cpu_level_name(CpuLevel level);

}  // namespace mnn
