// Opt-in profiler of the lazy executor (executor.cc): time per planned step,
// summed per op type and per step, over every run while it is on.
//
// Off by default and zero-cost when off (one relaxed atomic load per step).
// Switched on by MNN_PROFILE=1 in the environment (read once, at start-up),
// `_native.set_profiling(True)` from Python or `mnnx-run --profile`.
//
//   set_profiling(true); ... runs ...; std::puts(profile_report(20).c_str());
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace mnn {

namespace profile_detail {
extern std::atomic<bool> g_on;
}

inline bool profiling() { return profile_detail::g_on.load(std::memory_order_relaxed); }
void set_profiling(bool on);
void profile_reset();

using ProfileClock = std::chrono::steady_clock;

// One profiled step: `op` is the op type ("conv2d", "conv2d+relu", "fused[add,relu]"), `node`
// names the step ("#12 conv2d f32[1,64,56,56] <- f32[1,64,56,56], f32[64,64,3,3]").  Steps are
// keyed by `plan` (an id per cached plan) and step index, so a label is built once per step.
struct ProfileStep {
    int64_t plan = 0, step = 0;
    std::string op, node;
};
// Adds `seconds` to the step (label made by `make` only on its first run).
template <typename Make>
void profile_step(int64_t plan, int64_t step, double seconds, Make&& make);
// One evaluate() call: its whole wall time (planning and result publishing included).
void profile_run(double seconds);

struct ProfileEntry {
    std::string op, node;
    double seconds = 0;  // total over the profiled runs
    int64_t calls = 0;
};
struct ProfileSnapshot {
    int64_t runs = 0;           // evaluate() calls while profiling
    double run_seconds = 0;     // their total wall time
    std::vector<ProfileEntry> steps;
};
ProfileSnapshot profile_snapshot();
// Per op type and the `top` slowest steps, in ms per run and % of the profiled step time.
std::string profile_report(int top = 20);

// ---- implementation detail of profile_step -----------------------------------------------------
bool profile_has_step(int64_t plan, int64_t step);
void profile_add(int64_t plan, int64_t step, double seconds, const ProfileStep* label);

template <typename Make>
void profile_step(int64_t plan, int64_t step, double seconds, Make&& make) {
    if (profile_has_step(plan, step)) {
        profile_add(plan, step, seconds, nullptr);
    } else {
        ProfileStep s = make();
        s.plan = plan;
        s.step = step;
        profile_add(plan, step, seconds, &s);
    }
}

}  // namespace mnn
