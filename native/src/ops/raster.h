// The raster primitive (DESIGN §2, MNN's "geometry computing"): every
// movement op lowers to a list of strided regions copied from sources into
// one destination, and one dtype-agnostic kernel runs them.
//
// A Region copies, for every index vector i < size (row-major order),
//   dst[dst_offset + sum_k i_k * dst_stride[k]] = src[src_offset + sum_k i_k * src_stride[k]]
// Offsets and strides count elements (not bytes) of the tensors seen as flat
// arrays; strides may be negative or zero.  `src` is an input index, or
// kRegionSelf to read the destination as written by earlier regions (pad uses
// it to mirror already-copied data).  Regions run in order, so a later region
// overwrites an earlier one.  Within one region, an element written twice ends
// with the value of the last write in row-major order.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace mnn {

constexpr int kRegionMaxDims = 8;
constexpr int kRegionSelf = -1;

struct Region {
    int src = 0;
    int ndim = 0;
    int64_t size[kRegionMaxDims] = {};
    int64_t src_offset = 0;
    int64_t src_stride[kRegionMaxDims] = {};
    int64_t dst_offset = 0;
    int64_t dst_stride[kRegionMaxDims] = {};

    int64_t numel() const {
        int64_t n = 1;
        for (int k = 0; k < ndim; ++k) n *= size[k];
        return n;
    }
};

// Appends a region of any rank: drops size-1 dims, merges neighbouring dims
// that are contiguous in both source and destination, and splits the region
// into several when more than kRegionMaxDims dims remain.  Empty regions are
// dropped.
void add_region(std::vector<Region>& out, int src, const Shape& size, int64_t src_offset, const Shape& src_stride,
                int64_t dst_offset, const Shape& dst_stride);

// Throws ValueError (naming `op` and the region's position) unless every
// element the region reads lies in [0, src_numel) and every element it writes
// in [0, dst_numel).
void check_region(const Region& r, int64_t src_numel, int64_t dst_numel, const char* op, size_t index);

// Runs the regions into `out` (already allocated).  All inputs share the
// output's element size; the copy is by bytes, so any dtype works.
void run_raster(const std::vector<Region>& regions, const std::vector<Tensor>& inputs, Tensor& out);

// Sets every element of `t` to `value` converted to t's dtype (halves included).
void fill_value(Tensor& t, double value);

}  // namespace mnn
