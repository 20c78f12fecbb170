#include "core/thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"

namespace mnn {

namespace {

thread_local bool t_in_parallel = false;

// Spin briefly before sleeping: waking a thread from a condition variable
// costs tens of microseconds, which would dominate mid-sized parallel work.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}
constexpr int kSpinIterations = 4000;  // roughly 50-100 us

class ThreadPool {
public:
    explicit ThreadPool(int n) {
        for (int i = 0; i + 1 < n; ++i) workers_.emplace_back([this, i] { loop(i + 1); });
#if defined(__linux__)
        const char* env = std::getenv("MNN_PIN_THREADS");
        pin_ = !(env && !std::strcmp(env, "0")) && sched_getaffinity(0, sizeof(allowed_), &allowed_) == 0 &&
               CPU_COUNT(&allowed_) >= n && n > 1;
#endif
    }
    ~ThreadPool() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stop_.store(true);
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
    }
    int size() const { return int(workers_.size()) + 1; }

    // chunk > 0: chunks of that many items, claimed in order by whoever is free.  chunk == 0
    // (ranges): participant t (the caller 0, worker i + 1) first takes the items of its own range
    // [t * n / size, (t + 1) * n / size), one at a time, then helps with the others' rest.
    void run(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn) {
        std::unique_lock<std::mutex> job_lock(job_mu_);  // one job at a time
        place_workers();
        fn_ = &fn;
        n_ = n;
        chunk_ = chunk;
        next_.store(0);
        if (chunk == 0)
            for (int t = 0; t < size(); ++t) {
                ranges_[size_t(t)].next.store(t * n / size(), std::memory_order_relaxed);
                ranges_[size_t(t)].end = (t + 1) * n / size();
            }
        active_.store(int(workers_.size()));
        {
            std::lock_guard<std::mutex> lk(mu_);
            generation_.fetch_add(1, std::memory_order_release);
        }
        cv_.notify_all();
        work(0);
        for (int i = 0; i < kSpinIterations && active_.load(std::memory_order_acquire) != 0; ++i) cpu_relax();
        if (active_.load(std::memory_order_acquire) != 0) {
            std::unique_lock<std::mutex> lk(mu_);
            done_cv_.wait(lk, [this] { return active_.load(std::memory_order_acquire) == 0; });
        }
        fn_ = nullptr;
    }

private:
    // Keeps each worker on a CPU of its own, away from the calling thread's current CPU: after a
    // pause (other processes ran) the scheduler tends to wake a worker onto the caller's CPU,
    // where the two share one core for whole bursts of calls (a 3x3 conv took 1.0 ms instead of
    // 0.57). The caller's affinity is never changed; when it moves, the workers are re-placed.
    // MNN_PIN_THREADS=0 leaves placement to the OS.
    void place_workers() {
#if defined(__linux__)
        if (!pin_) return;
        int cpu = sched_getcpu();
        if (cpu == caller_cpu_) return;
        caller_cpu_ = cpu;
        size_t w = 0;
        for (int c = 0; c < CPU_SETSIZE && w < workers_.size(); ++c) {
            if (!CPU_ISSET(c, &allowed_) || c == cpu) continue;
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            pthread_setaffinity_np(workers_[w++].native_handle(), sizeof(one), &one);
        }
#endif
    }
    void work(int self) {
        t_in_parallel = true;
        if (chunk_ == 0) {
            const int parts = size();
            for (int k = 0; k < parts; ++k) {  // own range first, then the others' in turn
                Range& r = ranges_[size_t((self + k) % parts)];
                for (int64_t i; (i = r.next.fetch_add(1, std::memory_order_relaxed)) < r.end;) (*fn_)(i, i + 1);
            }
        } else {
            for (;;) {
                int64_t b = next_.fetch_add(chunk_);
                if (b >= n_) break;
                (*fn_)(b, std::min(n_, b + chunk_));
            }
        }
        t_in_parallel = false;
    }
    void loop(int self) {
        uint64_t seen = 0;
        for (;;) {
            for (int i = 0; i < kSpinIterations && generation_.load(std::memory_order_acquire) == seen && !stop_.load(); ++i)
                cpu_relax();
            if (generation_.load(std::memory_order_acquire) == seen) {
                std::unique_lock<std::mutex> lk(mu_);
                cv_.wait(lk, [&] { return stop_.load() || generation_.load() != seen; });
            }
            if (stop_.load()) return;
            seen = generation_.load(std::memory_order_acquire);
            work(self);
            if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard<std::mutex> lk(mu_);  // pairs with the caller's predicate check
                done_cv_.notify_one();
            }
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mu_, job_mu_;
    std::condition_variable cv_, done_cv_;
    std::atomic<bool> stop_{false};
#if defined(__linux__)
    cpu_set_t allowed_;
    bool pin_ = false;
    int caller_cpu_ = -1;
#endif
    std::atomic<uint64_t> generation_{0};
    const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
    int64_t n_ = 0, chunk_ = 1;
    std::atomic<int64_t> next_{0};
    std::atomic<int> active_{0};
    struct alignas(64) Range {  // (a cache line each: a participant's cursor stays in its core)
        std::atomic<int64_t> next{0};
        int64_t end = 0;
    };
    std::vector<Range> ranges_ = std::vector<Range>(64);
};

int default_threads() {
    unsigned hw = std::thread::hardware_concurrency();
    return int(std::max(1u, std::min(hw, 8u)));
}

std::mutex g_mu;
ThreadPool* g_pool = nullptr;
int g_threads = 0;  // 0 = default

void after_fork_child() {
    // The child has no worker threads and the pool's mutexes may be held by
    // threads that no longer exist: forget the old pool (leaked on purpose).
    new (&g_mu) std::mutex();
    g_pool = nullptr;
}

ThreadPool* pool() {
    static bool registered = [] { pthread_atfork(nullptr, nullptr, after_fork_child); return true; }();
    (void)registered;
    std::lock_guard<std::mutex> lk(g_mu);
    int want = g_threads ? g_threads : default_threads();
    if (!g_pool || g_pool->size() != want) {
        delete g_pool;
        g_pool = new ThreadPool(want);
    }
    return g_pool;
}

}  // namespace

void set_thread_number(int n) {
    if (n < 1) throw ValueError(fmt("set_thread_number: expected n >= 1, got ", n));
    std::lock_guard<std::mutex> lk(g_mu);
    g_threads = std::min(n, 64);
}

int get_thread_number() {
    std::lock_guard<std::mutex> lk(g_mu);
    return g_threads ? g_threads : default_threads();
}

bool in_parallel_region() { return t_in_parallel; }

void parallel_for_pool(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    if (t_in_parallel || n <= grain) { fn(0, n); return; }
    ThreadPool* p = pool();
    int threads = p->size();
    if (threads == 1) { fn(0, n); return; }
    // A few chunks per thread balances uneven work without much overhead; where a slightly larger
    // chunk splits [0, n) into a multiple of `threads` chunks, even work ends together (42 items on
    // 2 threads: 6 chunks of 7, not 7 of 6, which leaves one thread 24 items and the other 18).
    // (Only the chunk counts a multiple of `threads` at or below the base count are tried.)
    int64_t chunk = std::max(grain, (n + threads * 4 - 1) / (threads * 4));
    for (int64_t m = (n + chunk - 1) / chunk / threads; m >= 1; --m) {
        const int64_t c = (n + m * threads - 1) / (m * threads);
        if (c > 2 * chunk) break;
        if (((n + c - 1) / c) % threads == 0) {
            chunk = c;
            break;
        }
    }
    p->run(n, chunk, fn);
}

void parallel_for_ranges(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    if (t_in_parallel || n == 1) { fn(0, n); return; }
    ThreadPool* p = pool();
    if (p->size() == 1) { fn(0, n); return; }
    p->run(n, 0, fn);
}

}  // namespace mnn
