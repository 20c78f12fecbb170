// Hot loops that live beside their op family (pooling, direct and depthwise
// convolution) rather than in per-ISA files: each is compiled three times in
// its own file, for AVX-512, for AVX2+FMA and for the baseline, and the caller
// picks one per op call from active_level() (core/cpu.h), so MNN_CPU_LEVEL
// reaches these loops too and the tests run every level on one machine.
//
//   MNN_ISA_VARIANTS(name, (params), call...)
//
// defines name_avx512 / name_avx2 / name_generic, each running `call` (an
// always-inline template doing the work, inlined and compiled for that ISA),
// and `name_for(level)` returning the matching function pointer.  Keep the
// work in templates, not lambdas: a lambda is a function of its own, compiled
// for the baseline whatever its caller's ISA.
#pragma once
#include "core/cpu.h"

#if defined(MNN_GEMM_X86) && (defined(__GNUC__) || defined(__clang__))
#define MNN_ISA_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define MNN_ISA_AVX2 __attribute__((target("avx2,fma")))
#else
#define MNN_ISA_AVX512
#define MNN_ISA_AVX2
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MNN_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MNN_ALWAYS_INLINE inline
#endif

#define MNN_ISA_VARIANTS(NAME, PARAMS, ...)                                           \
    MNN_ISA_AVX512 void NAME##_avx512 PARAMS { __VA_ARGS__; }                         \
    MNN_ISA_AVX2 void NAME##_avx2 PARAMS { __VA_ARGS__; }                             \
    void NAME##_generic PARAMS { __VA_ARGS__; }                                       \
    inline decltype(&NAME##_generic) NAME##_for(::mnn::CpuLevel level) {              \
        return level == ::mnn::CpuLevel::Avx512 ? &NAME##_avx512                      \
               : level == ::mnn::CpuLevel::Avx2 ? &NAME##_avx2                        \
                                                : &NAME##_generic;                    \
    }

// The same, for work templated on a vector width: CALL(L) runs with L512 / L256 /
// L128 lanes in the AVX-512 / AVX2 / baseline variant (one register's worth each,
// so blocks of accumulators fit the register file).
#define MNN_ISA_VARIANTS_LANES(NAME, PARAMS, CALL, L512, L256, L128)                  \
    MNN_ISA_AVX512 void NAME##_avx512 PARAMS { CALL(L512); }                          \
    MNN_ISA_AVX2 void NAME##_avx2 PARAMS { CALL(L256); }                              \
    void NAME##_generic PARAMS { CALL(L128); }                                        \
    inline decltype(&NAME##_generic) NAME##_for(::mnn::CpuLevel level) {              \
        return level == ::mnn::CpuLevel::Avx512 ? &NAME##_avx512                      \
               : level == ::mnn::CpuLevel::Avx2 ? &NAME##_avx2                        \
                                                : &NAME##_generic;                    \
    }
