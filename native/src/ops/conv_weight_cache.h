// Convolution weights kept in a kernel's layout across calls (conv GEMM's packed panels,
// Winograd's transformed weights).  Entries are keyed by the weights' Storage and never keep it
// alive: an entry whose weights are gone is swept under the lock.  Bytes someone may rewrite
// under the same Storage (Storage::rewritable: numpy memory shared without a copy, runtime
// inputs, a plan's arena) are never cached.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace mnn {
namespace convgeom {

// What every cached entry records of its weights (each kernel adds its layout's fields).
struct WeightEntry {
    std::weak_ptr<Storage> src;  // the weights' storage (identity only)
    int64_t offset = 0;
    Shape shape;
    size_t bytes = 0;  // of the kernel's copy

    void set_source(const Tensor& w) {
        src = w.storage;
        offset = w.offset_bytes;
        shape = w.shape();
    }
    bool same_weights(const Tensor& w) const {
        return offset == w.offset_bytes && shape == w.shape() && src.lock() == w.storage;
    }
};

template <typename Entry>  // derives from WeightEntry
class WeightCache {
public:
    static bool cacheable(const Tensor& w) { return w.storage && !w.storage->rewritable; }

    // The entry made from `w` for which match(entry) holds, or null.
    template <typename Match>
    std::shared_ptr<const Entry> find(const Tensor& w, Match match) {
        if (!cacheable(w)) return nullptr;
        std::lock_guard<std::mutex> lk(mu_);
        auto it = entries_.find(w.storage.get());
        if (it != entries_.end())
            for (const auto& p : it->second)
                if (p->same_weights(w) && match(*p)) return p;
        return nullptr;
    }
    // Keeps `p` (made from `w`) unless `w` may be rewritten; over the budget the cache starts afresh.
    void insert(const Tensor& w, std::shared_ptr<const Entry> p) {
        if (!cacheable(w)) return;
        std::lock_guard<std::mutex> lk(mu_);
        sweep();
        if (bytes_ + p->bytes > kBudget) {
            entries_.clear();
            bytes_ = 0;
        }
        if (p->bytes <= kBudget) {
            bytes_ += p->bytes;
            entries_[w.storage.get()].push_back(std::move(p));
        }
    }
    void clear() {
        std::lock_guard<std::mutex> lk(mu_);
        entries_.clear();
        bytes_ = 0;
    }
    int64_t bytes() {
        std::lock_guard<std::mutex> lk(mu_);
        sweep();
        return int64_t(bytes_);
    }

private:
    static constexpr size_t kBudget = size_t(1) << 30;
    void sweep() {  // (under the lock) drops entries whose weights are gone
        for (auto it = entries_.begin(); it != entries_.end();) {
            auto& v = it->second;
            for (size_t i = 0; i < v.size();) {
                if (v[i]->src.expired()) {
                    bytes_ -= v[i]->bytes;
                    v.erase(v.begin() + long(i));
                } else {
                    ++i;
                }
            }
            it = v.empty() ? entries_.erase(it) : std::next(it);
        }
    }
    std::mutex mu_;
    std::unordered_map<const Storage*, std::vector<std::shared_ptr<const Entry>>> entries_;
    size_t bytes_ = 0;
};

}  // namespace convgeom
}  // namespace mnn
