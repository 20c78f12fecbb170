// Shape, Storage and Tensor: a dense, C-contiguous block of one dtype.
// Storage is reference counted so reshapes and zero-copy imports share bytes.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/small_vector.h"

namespace mnn {

// Shapes and strides live inline (no heap) up to 6 dims.
using Shape = SmallVector<int64_t, 6>;

inline int64_t numel(const Shape& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}
std::string shape_str(const Shape& s);
// Throws ValueError naming `op` unless every dim is >= 0 and the byte size of
// a tensor of this shape fits in int64 (so no size computation can wrap).
void check_shape(const Shape& s, DType t, const char* op);
inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << shape_str(s); }
Shape contiguous_strides(const Shape& s);  // in elements
// Normalise a possibly negative axis; throws ValueError naming `op` when out of range.
int normalize_axis(int64_t axis, int64_t ndim, const char* op);

// Bytes owned by the library (64-byte aligned, 64 bytes of tail padding so
// SIMD kernels may over-read), or borrowed from an outside owner (a numpy
// array, a DLPack capsule) kept alive by `keepalive`.
class Backend;  // backend/backend.h

struct Storage {
    void* data = nullptr;
    size_t bytes = 0;
    const Backend* device = nullptr;  // the device whose memory this is; null = host (CPU) memory
    void (*release)(void* data, void* ctx) = nullptr;  // frees the bytes or drops the outside owner
    void* release_ctx = nullptr;
    // The bytes may change while this Storage lives: they belong to someone outside (a numpy
    // array shared without a copy, a runtime caller's input) or are a lazy plan's arena,
    // rewritten every run.  No cache keyed on a Storage (packed weights) may trust them.
    bool rewritable = false;
    Storage() = default;
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
    ~Storage() { if (release) release(data, release_ctx); }
    static std::shared_ptr<Storage> allocate(size_t bytes);
};

struct TensorInfo {
    DType dtype = DType::Float32;
    Shape shape;
    int64_t numel() const { return mnn::numel(shape); }
    bool operator==(const TensorInfo& o) const { return dtype == o.dtype && shape == o.shape; }
};
std::string info_str(const TensorInfo& t);  // "float32[2, 3]"

struct Tensor {
    TensorInfo info;
    std::shared_ptr<Storage> storage;
    int64_t offset_bytes = 0;

    Tensor() = default;
    explicit Tensor(TensorInfo i);  // allocates
    Tensor(DType t, Shape s) : Tensor(TensorInfo{t, std::move(s)}) {}

    bool defined() const { return storage != nullptr; }
    DType dtype() const { return info.dtype; }
    const Shape& shape() const { return info.shape; }
    int64_t ndim() const { return int64_t(info.shape.size()); }
    int64_t numel() const { return info.numel(); }
    size_t nbytes() const { return size_t(numel()) * dtype_size(info.dtype); }
    void* raw() const { return static_cast<char*>(storage->data) + offset_bytes; }
    template <typename T> T* data() const { return static_cast<T*>(raw()); }
    // Same bytes, new shape (numel must match).
    Tensor view(Shape s) const;
};

}  // namespace mnn
