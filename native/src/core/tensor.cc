#include "core/tensor.h"

#include <cstdlib>
#include <new>
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace mnn {

std::string shape_str(const Shape& s) {
    std::string r = "(";
    for (size_t i = 0; i < s.size(); ++i) {
        if (i) r += ", ";
        r += std::to_string(s[i]);
    }
    if (s.size() == 1) r += ",";
    return r + ")";
}

std::string info_str(const TensorInfo& t) { return std::string(dtype_name(t.dtype)) + shape_str(t.shape); }

void check_shape(const Shape& s, DType t, const char* op) {
    int64_t bytes = int64_t(dtype_size(t));
    for (int64_t d : s) {
        if (d < 0) throw ValueError(fmt(op, ": negative dimension in shape ", shape_str(s)));
        if (d == 0) return;  // size 0: any other dims are fine
    }
    for (int64_t d : s)
        if (__builtin_mul_overflow(bytes, d, &bytes) || bytes > (int64_t(1) << 62))
            throw ValueError(fmt(op, ": shape ", shape_str(s), " of ", dtype_name(t), " is too large (its byte size overflows)"));
}

Shape contiguous_strides(const Shape& s) {
    Shape st(s.size());
    int64_t acc = 1;
    for (size_t i = s.size(); i-- > 0;) { st[i] = acc; acc *= s[i]; }
    return st;
}

int normalize_axis(int64_t axis, int64_t ndim, const char* op) {
    int64_t a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim)
        throw ValueError(fmt(op, ": axis ", axis, " is out of range for a ", ndim, "-d input (expected -", ndim, " <= axis < ", ndim, ")"));
    return int(a);
}

static constexpr size_t kHugeBytes = size_t(4) << 20;  // numpy's threshold for huge-page hints

std::shared_ptr<Storage> Storage::allocate(size_t bytes) {
    auto s = std::make_shared<Storage>();
    // Small blocks come from malloc (16-byte aligned, fast); large ones are
    // 64-byte aligned.  Both get 64 bytes of tail padding for SIMD over-reads.
    void* p;
    if (bytes <= 256) {
        p = std::malloc(bytes + 64);
    } else if (bytes < kHugeBytes) {
        p = std::aligned_alloc(64, ((bytes + 63) / 64) * 64 + 64);
    } else {
        // Large buffers: 2 MiB aligned and marked for transparent huge pages, so
        // first touch costs one fault per 2 MiB instead of per 4 KiB (numpy does the same).
        size_t padded = ((bytes + 64 + kHugeBytes / 2 - 1) / (kHugeBytes / 2)) * (kHugeBytes / 2);
        p = std::aligned_alloc(kHugeBytes / 2, padded);
#ifdef MADV_HUGEPAGE
        if (p) madvise(p, padded, MADV_HUGEPAGE);
#endif
    }
    if (!p) throw MemoryError(fmt("out of memory: cannot allocate ", bytes, " bytes"));
    s->data = p;
    s->bytes = bytes;
    s->release = [](void* d, void*) { std::free(d); };
    return s;
}

Tensor::Tensor(TensorInfo i) : info(std::move(i)) {
    check_shape(info.shape, info.dtype, "tensor");
    storage = Storage::allocate(nbytes());
}

Tensor Tensor::view(Shape s) const {
    Tensor t = *this;
    t.info.shape = std::move(s);
    return t;
}

}  // namespace mnn
