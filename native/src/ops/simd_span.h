// Short-span helpers for kernels compiled per ISA (isa_variants.h): copies and
// fills in chunks of L lanes, the last partial chunk with AVX-512 masks in the
// 64-byte variant (a scalar tail elsewhere), so rows of 7 or 14 values - the
// small layers of a CNN - neither run scalar loops nor call memcpy / memset.
//
// L is the variant's lanes (MNN_ISA_VARIANTS_LANES): 64 / sizeof(T) only in the
// AVX-512 variant, so the masked branches are instantiated there alone.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>

#include "ops/isa_variants.h"

#if defined(MNN_GEMM_X86) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MNN_SPAN_MASKS 1
#endif

namespace mnn {
namespace simd {

#if defined(MNN_SPAN_MASKS)
// The first n (< 64 / sizeof(T)) values of s to d.
MNN_ISA_AVX512 inline void mask_copy(float* d, const float* s, int64_t n) {
    const __mmask16 m = __mmask16((1u << n) - 1u);
    _mm512_mask_storeu_ps(d, m, _mm512_maskz_loadu_ps(m, s));
}
MNN_ISA_AVX512 inline void mask_copy(double* d, const double* s, int64_t n) {
    const __mmask8 m = __mmask8((1u << n) - 1u);
    _mm512_mask_storeu_pd(d, m, _mm512_maskz_loadu_pd(m, s));
}
// d[0:16] = the first n (< 16) values of s, then zeros: one whole-vector store, so a later
// whole-vector load of d is forwarded from it (after a masked store it would wait for the cache).
MNN_ISA_AVX512 inline void mask_load_chunk(float* d, const float* s, int64_t n) {
    _mm512_storeu_ps(d, _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1u), s));
}
MNN_ISA_AVX512 inline void mask_load_chunk(double* d, const double* s, int64_t n) {
    _mm512_storeu_pd(d, _mm512_maskz_loadu_pd(__mmask8((1u << n) - 1u), s));
}
MNN_ISA_AVX512 inline void mask_zero(float* d, int64_t n) {
    _mm512_mask_storeu_ps(d, __mmask16((1u << n) - 1u), _mm512_setzero_ps());
}
MNN_ISA_AVX512 inline void mask_zero(double* d, int64_t n) {
    _mm512_mask_storeu_pd(d, __mmask8((1u << n) - 1u), _mm512_setzero_pd());
}
#endif

// 64-byte aligned scratch that only grows (one per thread and use: `thread_local Scratch s;`).
struct Scratch {
    void* p = nullptr;
    size_t bytes = 0;
    Scratch() = default;
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
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

template <typename T, int L>
constexpr bool masked() {
#if defined(MNN_SPAN_MASKS)
    return L * sizeof(T) == 64;
#else
    return false;
#endif
}

// d[0:n] = s[0:n] (no overlap).
template <typename T, int L>
MNN_ALWAYS_INLINE void copy(T* __restrict d, const T* __restrict s, int64_t n) {
    int64_t i = 0;
    for (; i + L <= n; i += L)
        for (int l = 0; l < L; ++l) d[i + l] = s[i + l];
    if (i == n) return;
#if defined(MNN_SPAN_MASKS)
    if constexpr (masked<T, L>()) {
        mask_copy(d + i, s + i, n - i);
        return;
    }
#endif
    for (; i < n; ++i) d[i] = s[i];
}

// d[0:L] = s[0:n] then zeros, for n < L: a span's tail into a local chunk of whole lanes.
template <typename T, int L>
MNN_ALWAYS_INLINE void load_chunk(T* __restrict d, const T* __restrict s, int64_t n) {
#if defined(MNN_SPAN_MASKS)
    if constexpr (masked<T, L>()) {
        mask_load_chunk(d, s, n);
        return;
    }
#endif
    for (int l = 0; l < L; ++l) d[l] = l < n ? s[l] : T(0);
}

// d[0:n] = 0.
template <typename T, int L>
MNN_ALWAYS_INLINE void zero(T* d, int64_t n) {
    int64_t i = 0;
    for (; i + L <= n; i += L)
        for (int l = 0; l < L; ++l) d[i + l] = T(0);
    if (i == n) return;
#if defined(MNN_SPAN_MASKS)
    if constexpr (masked<T, L>()) {
        mask_zero(d + i, n - i);
        return;
    }
#endif
    for (; i < n; ++i) d[i] = T(0);
}

}  // namespace simd
}  // namespace mnn
