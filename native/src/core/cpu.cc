#include "core/cpu.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace mnn {

CpuLevel hardware_level() {
    static const CpuLevel level = [] {
#if defined(MNN_GEMM_X86)
        __builtin_cpu_init();
        bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        if (avx2 && __builtin_cpu_supports("avx512f")) return CpuLevel::Avx512;
        if (avx2) return CpuLevel::Avx2;
#elif defined(__aarch64__)
        return CpuLevel::Neon;
#endif
        return CpuLevel::Generic;
    }();
    return level;
}

CpuLevel active_level() {
    CpuLevel hw = hardware_level();
    const char* env = std::getenv("MNN_CPU_LEVEL");
    if (!env || !*env) return hw;
    if (!std::strcmp(env, "generic")) return CpuLevel::Generic;
    if (hw == CpuLevel::Neon) return hw;  // (the x86 names mean nothing here)
    CpuLevel want = hw;
    if (!std::strcmp(env, "avx2")) want = CpuLevel::Avx2;
    else if (!std::strcmp(env, "avx512")) want = CpuLevel::Avx512;
    return std::min(hw, want);
}

const char* cpu_level_name(CpuLevel level) {
    switch (level) {
        case CpuLevel::Avx512: return "avx512";
        case CpuLevel::Avx2: return "avx2";
        case CpuLevel::Neon: return "neon";
        default: return "generic";
    }
}

}  // namespace mnn
