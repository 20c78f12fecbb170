// The executor's opt-in profiler: see profile.h.
#include "graph/profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

namespace mnn {

namespace profile_detail {

bool env_on() {
    const char* v = std::getenv("MNN_PROFILE");
    return v && *v && std::strcmp(v, "0") != 0;
}

std::atomic<bool> g_on{env_on()};

}  // namespace profile_detail

namespace {

struct Slot {
    std::string op, node;
    double seconds = 0;
    int64_t calls = 0;
};

struct Store {
    std::mutex mu;
    std::unordered_map<uint64_t, size_t> index;  // (plan, step) -> slot
    std::vector<Slot> slots;
    int64_t runs = 0;
    double run_seconds = 0;
};

Store& store() {
    static Store s;
    return s;
}

uint64_t step_key(int64_t plan, int64_t step) { return (uint64_t(plan) << 24) ^ uint64_t(step); }

std::string ms(double seconds, int64_t runs) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%9.3f", 1e3 * seconds / double(std::max<int64_t>(runs, 1)));
    return buf;
}

std::string pct(double part, double whole) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%5.1f%%", whole > 0 ? 100.0 * part / whole : 0.0);
    return buf;
}

}  // namespace

void set_profiling(bool on) { profile_detail::g_on.store(on, std::memory_order_relaxed); }

void profile_reset() {
    Store& s = store();
    std::lock_guard<std::mutex> lk(s.mu);
    s.index.clear();
    s.slots.clear();
    s.runs = 0;
    s.run_seconds = 0;
}

bool profile_has_step(int64_t plan, int64_t step) {
    Store& s = store();
    std::lock_guard<std::mutex> lk(s.mu);
    return s.index.count(step_key(plan, step)) != 0;
}

void profile_add(int64_t plan, int64_t step, double seconds, const ProfileStep* label) {
    Store& s = store();
    std::lock_guard<std::mutex> lk(s.mu);
    auto it = s.index.find(step_key(plan, step));
    size_t k;
    if (it != s.index.end()) {
        k = it->second;
    } else {
        k = s.slots.size();
        s.index[step_key(plan, step)] = k;
        s.slots.push_back({label ? label->op : "?", label ? label->node : "?", 0, 0});
    }
    s.slots[k].seconds += seconds;
    ++s.slots[k].calls;
}

void profile_run(double seconds) {
    Store& s = store();
    std::lock_guard<std::mutex> lk(s.mu);
    ++s.runs;
    s.run_seconds += seconds;
}

ProfileSnapshot profile_snapshot() {
    Store& s = store();
    std::lock_guard<std::mutex> lk(s.mu);
    ProfileSnapshot out;
    out.runs = s.runs;
    out.run_seconds = s.run_seconds;
    for (const Slot& sl : s.slots) out.steps.push_back({sl.op, sl.node, sl.seconds, sl.calls});
    return out;
}

std::string profile_report(int top) {
    ProfileSnapshot snap = profile_snapshot();
    // Nested runs (control-flow bodies) are counted as runs too; per-run figures divide by the
    // outermost count only approximately then.
    const int64_t runs = std::max<int64_t>(snap.runs, 1);
    double steps_total = 0;
    std::map<std::string, std::pair<double, int64_t>> by_op;
    for (const ProfileEntry& e : snap.steps) {
        steps_total += e.seconds;
        auto& v = by_op[e.op];
        v.first += e.seconds;
        v.second += e.calls;
    }
    std::vector<std::pair<std::string, std::pair<double, int64_t>>> ops(by_op.begin(), by_op.end());
    std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
    std::vector<ProfileEntry> steps = snap.steps;
    std::sort(steps.begin(), steps.end(), [](const ProfileEntry& a, const ProfileEntry& b) { return a.seconds > b.seconds; });

    std::string r;
    char line[512];
    std::snprintf(line, sizeof line, "profile: %lld runs, %.3f ms per run (steps %.3f ms, the rest %.3f ms: planning, "
                  "arena, publishing)\n", static_cast<long long>(snap.runs), 1e3 * snap.run_seconds / double(runs),
                  1e3 * steps_total / double(runs), 1e3 * (snap.run_seconds - steps_total) / double(runs));
    r += line;
    r += "by op type:           ms/run    share   steps/run\n";
    for (const auto& [op, v] : ops) {
        std::snprintf(line, sizeof line, "  %-18s %s   %s   %7.1f\n", op.c_str(), ms(v.first, runs).c_str(),
                      pct(v.first, steps_total).c_str(), double(v.second) / double(runs));
        r += line;
    }
    std::snprintf(line, sizeof line, "top %d steps:          ms/run    share\n", top);
    r += line;
    for (int i = 0; i < top && i < int(steps.size()); ++i) {
        const ProfileEntry& e = steps[size_t(i)];
        std::snprintf(line, sizeof line, "  %s   %s   %s\n", ms(e.seconds, runs).c_str(), pct(e.seconds, steps_total).c_str(),
                      e.node.c_str());
        r += line;
    }
    return r;
}

}  // namespace mnn
