// Random numbers: RandomUniform and RandomNormal, counter-based.
//
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
// 3", SC'11) maps a 128-bit counter and a 64-bit key to four 32-bit words.
// The key is the op's `seed`; the counter is (block, offset): `offset`
// selects an independent stream and `block` the position in it.  Element i
// of a draw depends only on (seed, offset, i), so draws are reproducible,
// identical in eager and lazy mode and whatever the thread count.
//
//   float32 uniform: element i <- word i%4 of block i/4, 24 bits -> [0, 1)
//   float64 uniform: element i <- words 2(i%2), 2(i%2)+1 of block i/2, 53 bits
//   float32 normal:  Box-Muller on words (0,1) and (2,3) of block i/4
//   float64 normal:  Box-Muller on 53-bit uniforms from words (0,1), (2,3) of block i/2
// float16/bfloat16 draws are computed in float32 and rounded; uniform values
// that round up to `high` are moved to the largest value below it, so every
// uniform draw lies in [low, high).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "ops/common.h"

namespace mnn {

namespace {

constexpr int64_t kGrainBlocks = 1 << 12;

struct Words { uint32_t w[4]; };

inline Words philox4x32_10(uint64_t counter_lo, uint64_t counter_hi, uint64_t key) {
    constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    uint32_t c0 = uint32_t(counter_lo), c1 = uint32_t(counter_lo >> 32), c2 = uint32_t(counter_hi),
             c3 = uint32_t(counter_hi >> 32);
    uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
    for (int r = 0; r < 10; ++r) {
        uint64_t p0 = uint64_t(M0) * c0, p1 = uint64_t(M1) * c2;
        uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0), hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += W0;
        k1 += W1;
    }
    return Words{{c0, c1, c2, c3}};
}

// Philox for kLanes consecutive blocks at once, written lane-wise (a form
// that wider SIMD targets can vectorise).  out[w][l] is word w of block first + l;
// the values equal philox4x32_10's.
constexpr int kLanes = 8;
inline void philox_lanes(uint64_t first, uint64_t counter_hi, uint64_t key, uint32_t out[4][kLanes]) {
    constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
    for (int l = 0; l < kLanes; ++l) {
        uint64_t lo = first + uint64_t(l);
        c0[l] = uint32_t(lo); c1[l] = uint32_t(lo >> 32);
        c2[l] = uint32_t(counter_hi); c3[l] = uint32_t(counter_hi >> 32);
    }
    uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
    for (int r = 0; r < 10; ++r) {
        for (int l = 0; l < kLanes; ++l) {
            uint64_t p0 = uint64_t(M0) * c0[l], p1 = uint64_t(M1) * c2[l];
            uint32_t n0 = uint32_t(p1 >> 32) ^ c1[l] ^ k0, n2 = uint32_t(p0 >> 32) ^ c3[l] ^ k1;
            c1[l] = uint32_t(p1);
            c3[l] = uint32_t(p0);
            c0[l] = n0;
            c2[l] = n2;
        }
        k0 += W0;
        k1 += W1;
    }
    for (int l = 0; l < kLanes; ++l) { out[0][l] = c0[l]; out[1][l] = c1[l]; out[2][l] = c2[l]; out[3][l] = c3[l]; }
}

inline float u24(uint32_t w) { return float(w >> 8) * (1.0f / 16777216.0f); }                    // [0, 1)
inline double u53(uint32_t hi, uint32_t lo) {                                                      // [0, 1)
    return double(((uint64_t(hi) << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
}
inline float u32_open0(uint32_t w) { return (float(w >> 8) + 1.0f) * (1.0f / 16777216.0f); }      // (0, 1]
inline double u53_open0(uint32_t hi, uint32_t lo) {
    return (double(((uint64_t(hi) << 32) | lo) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

constexpr double kTwoPi = 6.283185307179586476925286766559;

// ---- writing one value of each output dtype ------------------------------------------

// The largest value of the dtype below `v` (v finite, not the lowest).
template <typename T> T below(T v) { return std::nextafter(v, -std::numeric_limits<T>::infinity()); }
inline uint16_t below16(uint16_t h) {  // sign-magnitude 16-bit floats (half, bfloat16)
    if (h == 0x0000) return 0x8001;
    return (h & 0x8000) ? uint16_t(h + 1) : uint16_t(h - 1);
}

struct UniformParams { double low, high; };

template <typename T>
void store_uniform(T* out, int64_t i, double u, const UniformParams& p, T thigh) {
    T v = T(p.low + (p.high - p.low) * u);
    if (p.high > p.low && !(v < thigh)) v = below(thigh);
    if (v < T(p.low)) v = T(p.low);
    out[i] = v;
}

template <bool kBf16>
void store_uniform16(uint16_t* out, int64_t i, float u, const UniformParams& p, float fhigh) {
    float v = float(p.low + (p.high - p.low) * double(u));
    uint16_t h = kBf16 ? float_to_bf16(v) : float_to_half(v);
    auto back = [](uint16_t b) { return kBf16 ? bf16_to_float(b) : half_to_float(b); };
    if (p.high > p.low) {
        while (!(back(h) < fhigh)) h = below16(h);
        if (back(h) < float(p.low)) h = kBf16 ? float_to_bf16(float(p.low)) : float_to_half(float(p.low));
    }
    out[i] = h;
}

// ---- kernels -------------------------------------------------------------------------

template <typename F>
void for_blocks(int64_t n, int64_t per_block, F f) {
    int64_t blocks = (n + per_block - 1) / per_block;
    parallel_for(blocks, kGrainBlocks, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) f(k);
    });
}

void uniform_kernel(const Attrs& a, const std::vector<Tensor>&, std::vector<Tensor>& out) {
    Tensor& y = out[0];
    const int64_t n = y.numel();
    const uint64_t seed = uint64_t(a.i("seed")), offset = uint64_t(a.i("offset"));
    UniformParams p{a.f("low"), a.f("high")};
    switch (y.dtype()) {
        case DType::Float64: {
            double* q = y.data<double>();
            double th = p.high;
            for_blocks(n, 2, [&](int64_t k) {
                Words w = philox4x32_10(uint64_t(k), offset, seed);
                for (int j = 0; j < 2 && 2 * k + j < n; ++j)
                    store_uniform(q, 2 * k + j, u53(w.w[2 * j], w.w[2 * j + 1]), p, th);
            });
            break;
        }
        case DType::Float32: {
            float* q = y.data<float>();
            const float th = float(p.high), lo = float(p.low), span = float(p.high - p.low);
            const float top = p.high > p.low ? below(th) : lo;  // largest value allowed
            for_blocks(n, 4 * kLanes, [&](int64_t g) {
                uint32_t w[4][kLanes];
                philox_lanes(uint64_t(g) * kLanes, offset, seed, w);
                float v[4 * kLanes];
                for (int l = 0; l < kLanes; ++l)
                    for (int j = 0; j < 4; ++j) {
                        float r = lo + span * u24(w[j][l]);
                        v[4 * l + j] = r < top ? r : top;
                    }
                int64_t base = g * 4 * kLanes, m = std::min<int64_t>(4 * kLanes, n - base);
                for (int j = 0; j < m; ++j) q[base + j] = v[j];
            });
            break;
        }
        case DType::Float16: case DType::BFloat16: {
            uint16_t* q = y.data<uint16_t>();
            bool bf = y.dtype() == DType::BFloat16;
            float fh = float(p.high);
            for_blocks(n, 4, [&](int64_t k) {
                Words w = philox4x32_10(uint64_t(k), offset, seed);
                for (int j = 0; j < 4 && 4 * k + j < n; ++j) {
                    if (bf) store_uniform16<true>(q, 4 * k + j, u24(w.w[j]), p, fh);
                    else store_uniform16<false>(q, 4 * k + j, u24(w.w[j]), p, fh);
                }
            });
            break;
        }
        default: throw TypeError(fmt(a.op_name, ": expected a float dtype (internal error)"));
    }
}

void normal_kernel(const Attrs& a, const std::vector<Tensor>&, std::vector<Tensor>& out) {
    Tensor& y = out[0];
    const int64_t n = y.numel();
    const uint64_t seed = uint64_t(a.i("seed")), offset = uint64_t(a.i("offset"));
    const double mean = a.f("mean"), sd = a.f("std");
    switch (y.dtype()) {
        case DType::Float64: {
            double* q = y.data<double>();
            for_blocks(n, 2, [&](int64_t k) {
                Words w = philox4x32_10(uint64_t(k), offset, seed);
                double r = std::sqrt(-2.0 * std::log(u53_open0(w.w[0], w.w[1]))), t = kTwoPi * u53(w.w[2], w.w[3]);
                q[2 * k] = mean + sd * r * std::cos(t);
                if (2 * k + 1 < n) q[2 * k + 1] = mean + sd * r * std::sin(t);
            });
            break;
        }
        case DType::Float32: case DType::Float16: case DType::BFloat16: {
            DType dt = y.dtype();
            float* qf = dt == DType::Float32 ? y.data<float>() : nullptr;
            uint16_t* qh = dt == DType::Float32 ? nullptr : y.data<uint16_t>();
            const float m = float(mean), s = float(sd);
            for_blocks(n, 4, [&](int64_t k) {
                Words w = philox4x32_10(uint64_t(k), offset, seed);
                float z[4];
                for (int j = 0; j < 2; ++j) {
                    float r = std::sqrt(-2.0f * std::log(u32_open0(w.w[2 * j]))), t = float(kTwoPi) * u24(w.w[2 * j + 1]);
                    z[2 * j] = m + s * r * std::cos(t);
                    z[2 * j + 1] = m + s * r * std::sin(t);
                }
                for (int j = 0; j < 4 && 4 * k + j < n; ++j) {
                    if (qf) qf[4 * k + j] = z[j];
                    else qh[4 * k + j] = dt == DType::BFloat16 ? float_to_bf16(z[j]) : float_to_half(z[j]);
                }
            });
            break;
        }
        default: throw TypeError(fmt(a.op_name, ": expected a float dtype (internal error)"));
    }
}

std::vector<TensorInfo> random_infer(const Attrs& a, const std::vector<TensorInfo>&) {
    const Shape& s = a.ints("shape");
    for (int64_t d : s)
        MNN_CHECK_VALUE(d >= 0, a.op_name, ": dimensions must be >= 0, got shape ", shape_str(s));
    DType t = a.dtype("dtype");
    MNN_CHECK_TYPE(is_float(t), a.op_name, ": dtype must be a float type, got ", dtype_name(t),
                   " (draw floats and cast, as randint does)");
    if (a.op == OpType::RandomUniform) {
        double lo = a.f("low"), hi = a.f("high");
        MNN_CHECK_VALUE(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, a.op_name,
                        ": expected finite bounds with low <= high, got low=", lo, ", high=", hi);
    } else {
        double m = a.f("mean"), sd = a.f("std");
        MNN_CHECK_VALUE(std::isfinite(m) && std::isfinite(sd) && sd >= 0, a.op_name,
                        ": expected a finite mean and a finite std >= 0, got mean=", m, ", std=", sd);
    }
    return {TensorInfo{t, s}};
}

}  // namespace

void register_random_ops() {
    register_op(OpType::RandomUniform, random_infer, uniform_kernel, /*half_native=*/true);
    register_op(OpType::RandomNormal, random_infer, normal_kernel, /*half_native=*/true);
}

}  // namespace mnn
