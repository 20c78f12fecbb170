// The raster kernel: strided region copies by element size.
//
// Per region: the innermost dim is a row copied by a typed loop (memcpy when
// both sides are contiguous, a fill when the source stride is 0); the outer
// dims are walked odometer-style and split across the thread pool.  A region
// that reads with a large stride in its innermost dim but has a unit-stride
// source dim elsewhere (a transpose) is copied in square tiles so both sides
// stay in cache.  Regions that may write an element twice, or that read the
// destination where they write it, run serially in row-major order so the
// result is the documented one.
#include "ops/raster.h"

#include <algorithm>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/thread_pool.h"

namespace mnn {

namespace {

constexpr int64_t kGrainBytes = 1 << 16;

using i128 = __int128;

// ---- region construction ------------------------------------------------------

struct Dim {
    int64_t size, ss, ds;
};

void emit(std::vector<Region>& out, int src, const std::vector<Dim>& dims, int64_t so, int64_t doff) {
    if (int(dims.size()) <= kRegionMaxDims) {
        Region r;
        r.src = src;
        r.ndim = int(dims.size());
        r.src_offset = so;
        r.dst_offset = doff;
        for (int k = 0; k < r.ndim; ++k) {
            r.size[k] = dims[k].size;
            r.src_stride[k] = dims[k].ss;
            r.dst_stride[k] = dims[k].ds;
        }
        out.push_back(r);
        return;
    }
    // Too many dims: one region per index of the outermost dim.
    std::vector<Dim> rest(dims.begin() + 1, dims.end());
    for (int64_t i = 0; i < dims[0].size; ++i) emit(out, src, rest, so + i * dims[0].ss, doff + i * dims[0].ds);
}

}  // namespace

void add_region(std::vector<Region>& out, int src, const Shape& size, int64_t src_offset, const Shape& src_stride,
                int64_t dst_offset, const Shape& dst_stride) {
    std::vector<Dim> dims;
    dims.reserve(size.size());
    for (size_t k = 0; k < size.size(); ++k) {
        if (size[k] == 0) return;
        if (size[k] == 1) continue;
        dims.push_back({size[k], src_stride[k], dst_stride[k]});
    }
    // Merge dim k into the dim inside it when both sides step over it contiguously.
    std::vector<Dim> merged;
    for (size_t k = dims.size(); k-- > 0;) {
        Dim d = dims[k];
        if (!merged.empty()) {
            Dim& in = merged.back();
            if (d.ss == in.ss * in.size && d.ds == in.ds * in.size) {
                in.size *= d.size;
                continue;
            }
        }
        merged.push_back(d);
    }
    std::reverse(merged.begin(), merged.end());
    emit(out, src, merged, src_offset, dst_offset);
}

void check_region(const Region& r, int64_t src_numel, int64_t dst_numel, const char* op, size_t index) {
    MNN_CHECK_VALUE(r.ndim >= 0 && r.ndim <= kRegionMaxDims, op, ": region ", index, " has ", r.ndim,
                    " dims (expected 0 to ", kRegionMaxDims, ")");
    i128 slo = r.src_offset, shi = r.src_offset, dlo = r.dst_offset, dhi = r.dst_offset;
    for (int k = 0; k < r.ndim; ++k) {
        MNN_CHECK_VALUE(r.size[k] >= 0, op, ": region ", index, " has a negative size ", r.size[k]);
        if (r.size[k] == 0) return;  // copies nothing
        i128 s = i128(r.size[k] - 1) * r.src_stride[k], d = i128(r.size[k] - 1) * r.dst_stride[k];
        (s < 0 ? slo : shi) += s;
        (d < 0 ? dlo : dhi) += d;
    }
    auto str = [](i128 v) {
        bool neg = v < 0;
        std::string d;
        do { int r = int(v % 10); d += char('0' + (r < 0 ? -r : r)); v /= 10; } while (v != 0);
        if (neg) d += '-';
        return std::string(d.rbegin(), d.rend());
    };
    auto range = [&](i128 lo, i128 hi) { return "[" + str(lo) + ", " + str(hi) + "]"; };
    MNN_CHECK_VALUE(slo >= 0 && shi < src_numel, op, ": region ", index, " reads elements ", range(slo, shi),
                    " of a source with ", src_numel, " elements");
    MNN_CHECK_VALUE(dlo >= 0 && dhi < dst_numel, op, ": region ", index, " writes elements ", range(dlo, dhi),
                    " of a destination with ", dst_numel, " elements");
}

namespace {

// ---- copy loops -----------------------------------------------------------------

template <typename T>
void copy_row(char* d, const char* s, int64_t n, int64_t ds, int64_t ss) {
    T* dp = reinterpret_cast<T*>(d);
    const T* sp = reinterpret_cast<const T*>(s);
    if (ds == 1) {
        if (ss == 1) { std::memcpy(dp, sp, size_t(n) * sizeof(T)); return; }
        if (ss == 0) { T v = *sp; for (int64_t i = 0; i < n; ++i) dp[i] = v; return; }
        if (ss == -1) { for (int64_t i = 0; i < n; ++i) dp[i] = sp[-i]; return; }
        for (int64_t i = 0; i < n; ++i) dp[i] = sp[i * ss];
        return;
    }
    for (int64_t i = 0; i < n; ++i) dp[i * ds] = sp[i * ss];
}

// Element by element in order: safe when source and destination overlap.
template <typename T>
void copy_row_ordered(char* d, const char* s, int64_t n, int64_t ds, int64_t ss) {
    T* dp = reinterpret_cast<T*>(d);
    const T* sp = reinterpret_cast<const T*>(s);
    for (int64_t i = 0; i < n; ++i) dp[i * ds] = sp[i * ss];
}

// dst[j * dj + l] = src[j + l * sl] over a rows x cols block (rows <= 32),
// in column blocks so the source lines stay in cache.  4- and 8-byte elements
// go through SSE2 register transposes (x86-64 baseline); the rest is scalar.
template <typename T>
void tile_scalar(T* dp, const T* sp, int64_t j0, int64_t j1, int64_t l0, int64_t l1, int64_t dj, int64_t sl) {
    for (int64_t j = j0; j < j1; ++j) {
        T* drow = dp + j * dj;
        const T* scol = sp + j;
        for (int64_t l = l0; l < l1; ++l) drow[l] = scol[l * sl];
    }
}

template <typename T>
void copy_tile(char* d, const char* s, int64_t rows, int64_t cols, int64_t dj, int64_t sl) {
    T* dp = reinterpret_cast<T*>(d);
    const T* sp = reinterpret_cast<const T*>(s);
    constexpr int64_t CB = 32;
#if defined(__SSE2__)
    if constexpr (sizeof(T) == 4 || sizeof(T) == 8) {
        constexpr int64_t K = sizeof(T) == 4 ? 4 : 2;  // register block K x K
        int64_t rk = rows - rows % K;
        for (int64_t l0 = 0; l0 < cols; l0 += CB) {
            int64_t l1 = std::min(cols, l0 + CB), lk = l0 + (l1 - l0) - (l1 - l0) % K;
            for (int64_t j = 0; j < rk; j += K) {
                for (int64_t l = l0; l < lk; l += K) {
                    const T* sb = sp + j + l * sl;
                    T* db = dp + j * dj + l;
                    if constexpr (K == 4) {
                        __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sb));
                        __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + sl));
                        __m128i r2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + 2 * sl));
                        __m128i r3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + 3 * sl));
                        __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpacklo_epi32(r2, r3);
                        __m128i t2 = _mm_unpackhi_epi32(r0, r1), t3 = _mm_unpackhi_epi32(r2, r3);
                        _mm_storeu_si128(reinterpret_cast<__m128i*>(db), _mm_unpacklo_epi64(t0, t1));
                        _mm_storeu_si128(reinterpret_cast<__m128i*>(db + dj), _mm_unpackhi_epi64(t0, t1));
                        _mm_storeu_si128(reinterpret_cast<__m128i*>(db + 2 * dj), _mm_unpacklo_epi64(t2, t3));
                        _mm_storeu_si128(reinterpret_cast<__m128i*>(db + 3 * dj), _mm_unpackhi_epi64(t2, t3));
                    } else {
                        __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sb));
                        __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + sl));
                        _mm_storeu_si128(reinterpret_cast<__m128i*>(db), _mm_unpacklo_epi64(r0, r1));
                        _mm_storeu_si128(reinterpret_cast<__m128i*>(db + dj), _mm_unpackhi_epi64(r0, r1));
                    }
                }
                if (lk < l1) tile_scalar(dp, sp, j, j + K, lk, l1, dj, sl);
            }
            if (rk < rows) tile_scalar(dp, sp, rk, rows, l0, l1, dj, sl);
        }
        return;
    }
#endif
    for (int64_t l0 = 0; l0 < cols; l0 += CB) tile_scalar(dp, sp, 0, rows, l0, std::min(cols, l0 + CB), dj, sl);
}

using RowFn = void (*)(char*, const char*, int64_t, int64_t, int64_t);
using TileFn = void (*)(char*, const char*, int64_t, int64_t, int64_t, int64_t);

template <typename T> struct Loops {
    static constexpr RowFn row = copy_row<T>;
    static constexpr RowFn ordered = copy_row_ordered<T>;
    static constexpr TileFn tile = copy_tile<T>;
};

void loops_for(size_t es, RowFn* row, RowFn* ordered, TileFn* tile) {
    switch (es) {
        case 1: *row = Loops<uint8_t>::row; *ordered = Loops<uint8_t>::ordered; *tile = Loops<uint8_t>::tile; return;
        case 2: *row = Loops<uint16_t>::row; *ordered = Loops<uint16_t>::ordered; *tile = Loops<uint16_t>::tile; return;
        case 4: *row = Loops<uint32_t>::row; *ordered = Loops<uint32_t>::ordered; *tile = Loops<uint32_t>::tile; return;
        default: *row = Loops<uint64_t>::row; *ordered = Loops<uint64_t>::ordered; *tile = Loops<uint64_t>::tile; return;
    }
}

// Sufficient test that a region writes no element twice: sorted by stride,
// each dim steps past everything the dims inside it cover.
bool writes_once(const Region& r) {
    int64_t st[kRegionMaxDims], sz[kRegionMaxDims];
    int n = 0;
    for (int k = 0; k < r.ndim; ++k) {
        if (r.size[k] == 1) continue;
        st[n] = r.dst_stride[k] < 0 ? -r.dst_stride[k] : r.dst_stride[k];
        sz[n++] = r.size[k];
    }
    for (int a = 1; a < n; ++a)  // insertion sort by stride
        for (int b = a; b > 0 && st[b] < st[b - 1]; --b) { std::swap(st[b], st[b - 1]); std::swap(sz[b], sz[b - 1]); }
    int64_t span = 1;
    for (int k = 0; k < n; ++k) {
        if (st[k] < span) return false;
        span = st[k] * (sz[k] - 1) + span;
    }
    return true;
}

void extent(const Region& r, bool src, int64_t* lo, int64_t* hi) {
    *lo = *hi = src ? r.src_offset : r.dst_offset;
    for (int k = 0; k < r.ndim; ++k) {
        int64_t s = (r.size[k] - 1) * (src ? r.src_stride[k] : r.dst_stride[k]);
        (s < 0 ? *lo : *hi) += s;
    }
}

// Odometer over the dims [0, nd) of r starting at linear index `start`.
struct Walker {
    const Region& r;
    int nd;
    int64_t idx[kRegionMaxDims];
    int64_t so, dof;
    Walker(const Region& reg, int ndims, int64_t start) : r(reg), nd(ndims), so(reg.src_offset), dof(reg.dst_offset) {
        for (int k = nd - 1; k >= 0; --k) {
            idx[k] = start % r.size[k];
            start /= r.size[k];
            so += idx[k] * r.src_stride[k];
            dof += idx[k] * r.dst_stride[k];
        }
    }
    void next() {
        for (int k = nd - 1; k >= 0; --k) {
            so += r.src_stride[k];
            dof += r.dst_stride[k];
            if (++idx[k] < r.size[k]) return;
            so -= r.src_stride[k] * r.size[k];
            dof -= r.dst_stride[k] * r.size[k];
            idx[k] = 0;
        }
    }
};

void run_region(Region r, const char* src, char* dst, size_t es, bool self) {
    RowFn row, ordered;
    TileFn tile;
    loops_for(es, &row, &ordered, &tile);
    if (r.ndim == 0) {
        std::memmove(dst + r.dst_offset * int64_t(es), src + r.src_offset * int64_t(es), es);
        return;
    }
    if (r.numel() == 0) return;
    bool careful = !writes_once(r);
    if (self && !careful) {
        int64_t slo, shi, dlo, dhi;
        extent(r, true, &slo, &shi);
        extent(r, false, &dlo, &dhi);
        careful = !(shi < dlo || dhi < slo);
    }
    int L = r.ndim - 1;
    if (careful) {  // serial, element by element, in row-major order
        int64_t rows = r.numel() / r.size[L];
        Walker w(r, L, 0);
        for (int64_t i = 0; i < rows; ++i, w.next())
            ordered(dst + w.dof * int64_t(es), src + w.so * int64_t(es), r.size[L], r.dst_stride[L], r.src_stride[L]);
        return;
    }
    // Transpose-like: contiguous writes, strided reads, and a unit-stride source dim elsewhere.
    if (r.ndim >= 2 && r.dst_stride[L] == 1 && r.size[L] >= 8 && (r.src_stride[L] > 1 || r.src_stride[L] < -1)) {
        int j = -1;
        for (int k = L - 1; k >= 0; --k)
            if (r.src_stride[k] == 1 && r.size[k] >= 8) { j = k; break; }
        if (j >= 0) {
            if (j != L - 1) {  // the region writes each element once, so its dims may be reordered
                std::swap(r.size[j], r.size[L - 1]);
                std::swap(r.src_stride[j], r.src_stride[L - 1]);
                std::swap(r.dst_stride[j], r.dst_stride[L - 1]);
            }
            const int64_t TB = 32;
            int64_t nj = r.size[L - 1], nl = r.size[L], tiles = (nj + TB - 1) / TB;
            int64_t outer = r.numel() / (nj * nl), units = outer * tiles;
            int64_t grain = std::max<int64_t>(1, kGrainBytes / (TB * nl * int64_t(es)));
            int64_t dj = r.dst_stride[L - 1], sl = r.src_stride[L];
            parallel_for(units, grain, [&](int64_t b, int64_t e) {
                int64_t o = b / tiles, t = b % tiles;
                Walker w(r, L - 1, o);
                for (int64_t u = b; u < e; ++u) {
                    int64_t j0 = t * TB, rows = std::min(TB, nj - j0);
                    tile(dst + (w.dof + j0 * dj) * int64_t(es), src + (w.so + j0) * int64_t(es), rows, nl, dj, sl);
                    if (++t == tiles) { t = 0; w.next(); }
                }
            });
            return;
        }
    }
    // General: rows of the innermost dim, long rows cut into pieces.
    int64_t n = r.size[L], ds = r.dst_stride[L], ss = r.src_stride[L];
    int64_t piece = std::max<int64_t>(n, 1);
    int64_t max_piece = std::max<int64_t>(1, (4 * kGrainBytes) / int64_t(es));
    if (piece > max_piece) piece = max_piece;
    int64_t pieces = (n + piece - 1) / piece;
    int64_t rows = r.numel() / n, units = rows * pieces;
    int64_t grain = std::max<int64_t>(1, kGrainBytes / (piece * int64_t(es)));
    parallel_for(units, grain, [&](int64_t b, int64_t e) {
        int64_t rw = b / pieces, p = b % pieces;
        Walker w(r, L, rw);
        for (int64_t u = b; u < e; ++u) {
            int64_t start = p * piece, len = std::min(piece, n - start);
            row(dst + (w.dof + start * ds) * int64_t(es), src + (w.so + start * ss) * int64_t(es), len, ds, ss);
            if (++p == pieces) { p = 0; w.next(); }
        }
    });
}

}  // namespace

void run_raster(const std::vector<Region>& regions, const std::vector<Tensor>& inputs, Tensor& out) {
    size_t es = dtype_size(out.dtype());
    char* dst = static_cast<char*>(out.raw());
    for (const Region& r : regions) {
        bool self = r.src == kRegionSelf;
        const char* src = self ? dst : static_cast<const char*>(inputs[size_t(r.src)].raw());
        run_region(r, src, dst, es, self);
    }
}

namespace {
template <typename T>
void fill_typed(Tensor& t, T v) {
    T* p = t.data<T>();
    parallel_for(t.numel(), kGrainBytes / int64_t(sizeof(T)), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) p[i] = v;
    });
}
}  // namespace

void fill_value(Tensor& t, double value) {
    switch (t.dtype()) {
        case DType::Float16: fill_typed<uint16_t>(t, float_to_half(float(value))); return;
        case DType::BFloat16: fill_typed<uint16_t>(t, float_to_bf16(float(value))); return;
        case DType::Bool: fill_typed<bool>(t, value != 0); return;
        case DType::Float32: fill_typed<float>(t, float(value)); return;
        case DType::Float64: fill_typed<double>(t, value); return;
        default: break;
    }
    // Integers: truncate toward zero, saturating (the constant is a user value, not data).
    double v = value != value ? 0.0 : value;
    switch (t.dtype()) {
        case DType::Int8: fill_typed<int8_t>(t, int8_t(std::clamp(v, -128.0, 127.0))); return;
        case DType::UInt8: fill_typed<uint8_t>(t, uint8_t(std::clamp(v, 0.0, 255.0))); return;
        case DType::Int32: fill_typed<int32_t>(t, int32_t(std::clamp(v, -2147483648.0, 2147483647.0))); return;
        default: fill_typed<int64_t>(t, int64_t(std::clamp(v, -9223372036854775808.0, 9223372036854774784.0))); return;
    }
}

}  // namespace mnn
