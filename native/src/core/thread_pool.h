// The one thread pool.  parallel_for splits [0, n) into chunks of at least
// `grain` items and runs them on the pool's workers plus the calling thread.
// Nested calls run inline.  After fork() the child gets a fresh pool on first
// use, so data-loader worker processes never wait on threads they lack.
#pragma once
#include <cstdint>
#include <functional>

namespace mnn {

void set_thread_number(int n);  // n >= 1; 1 = run everything on the caller
int get_thread_number();

void parallel_for_pool(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

// fn(i, i + 1) for every item i of [0, n), thread t first taking the t-th of equal contiguous
// ranges (the caller the first), then helping with what the others have left.  The same split in
// every call: where consecutive steps lay their items out alike (rows of an image), each thread
// finds most of its input where it wrote it, in its own core's cache.
void parallel_for_ranges(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);
bool in_parallel_region();

// Small work runs inline without building a std::function (per-op overhead matters).
template <typename F>
inline void parallel_for(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    if (n <= grain || in_parallel_region()) { fn(int64_t(0), n); return; }
    parallel_for_pool(n, grain, std::function<void(int64_t, int64_t)>(std::forward<F>(fn)));
}

}  // namespace mnn
