// Lazy evaluation: collect the pending subgraph of the Vars being read, find
// or build its plan (cached by structural key), and run it in one call.
//
// A plan is the schedule of the subgraph plus slot lifetimes, and groups of
// consecutive elementwise steps of one shape (DESIGN §5).  A group runs as one
// blocked pass: each thread walks blocks of kBlock elements through every op
// of the group, keeping intermediates that nobody outside the group reads in
// block-sized scratch buffers, so memory traffic is the group's inputs and
// outputs only.
//
// Memory planning (DESIGN §6): every other intermediate (not a result, not a
// fused pass's output) gets an offset in one arena, allocated once per run.
// A value's lifetime runs from the step that writes it to its last reader
// (through reshape views, which share its bytes); regions are assigned
// best-fit in schedule order and a region is reused only after the step that
// last reads it has finished, so no kernel's output overlaps a live input.
//
// Graph passes (passes.h: simplify, CSE, DCE) rewrite the schedule before the
// rest of the plan is made: dropped steps leave it, aliased slots are read
// through their source, so lifetimes, fusion groups and offsets below see only
// the steps that run.  Results that are aliases publish their source's value.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "backend/backend.h"
#include "core/thread_pool.h"
#include "graph/expr.h"
#include "graph/passes.h"
#include "graph/profile.h"
#include "ops/conv_blocked.h"
#include "ops/gemm_ext.h"

namespace mnn {

namespace {

constexpr int64_t kBlock = 4096;          // elements per block of a fused pass
constexpr int64_t kMinFusedNumel = 1 << 14;  // below this, blocking is not worth it
constexpr size_t kMaxPlans = 4096;            // plan-cache bound

struct Step {
    int node = 0;   // index into `order`
    int attrs = -1;  // index into Plan::attrs (attributes a pass gave it), or -1: the node's
    int epilogue = -1;  // a conv2d with Plan::epilogues[epilogue] fused (passes.h: conv_epilogue)
    int pre_node = -1, pre_attrs = -1, pre_epilogue = -1, pre_inputs = 0;  // a 1x1 run inside (passes.h)
    std::vector<int> in_slots, out_slots;
    std::vector<int> free_after;  // slots whose last reader is this step
};

struct Group {  // steps [first, last] run as one blocked pass
    int first, last;
    int64_t numel;
    std::unordered_set<int> scratch;  // slots that live only in block buffers
};

struct Plan {
    std::vector<Step> steps;  // the steps that run, in order
    std::vector<int> alias;   // per slot: the slot holding its value (itself unless a pass aliased it)
    std::vector<Attrs> attrs;  // attributes made or recorded by the passes
    std::vector<Guard> guards;  // value facts the passes relied on (checked before reuse)
    std::vector<ConvEpilogue> epilogues;  // fused convolution epilogues
    std::vector<TensorInfo> slot_info;    // per slot: how it is stored (the layout pass blocks some)
    PassCounts passes;
    std::vector<Group> groups;
    std::vector<int> group_of;  // step -> group index or -1
    const Attrs& attrs_of(const Step& s, const std::vector<Node*>& order) const {
        return s.attrs >= 0 ? attrs[size_t(s.attrs)] : order[size_t(s.node)]->attrs;
    }
    int n_slots = 0;
    std::vector<int64_t> offset;  // per slot: byte offset in the arena, or -1 (own buffer / leaf / view)
    int64_t arena_bytes = 0, unplanned_bytes = 0, planned_values = 0, in_place = 0;
    std::vector<char> on_device;  // per step: runs on the device backend (else on the CPU)
    // The arena of the last run, kept for the next (a fresh one per run would be page-faulted
    // in every time); a run that finds it taken (another thread) allocates its own.
    std::mutex arena_mu;
    std::shared_ptr<Storage> spare_arena;
    int64_t id = 0;  // names the plan's steps in the profiler (graph/profile.h)
    ~Plan();
};

// Arenas kept by cached plans, all together, stay under this (the rest are freed after their run).
constexpr int64_t kSpareArenaBudget = int64_t(512) << 20;

constexpr int64_t kAlign = 64;  // region alignment, and tail padding for SIMD over-reads

int64_t region_bytes(const TensorInfo& info) {
    int64_t b = info.numel() * int64_t(dtype_size(info.dtype));
    return (b + kAlign - 1) / kAlign * kAlign + kAlign;
}


// Lifetimes and best-fit offsets for the intermediates of a plan (see the top).
// Elementwise ops whose kernels read element i of every input before writing element i of
// the output (SIMD blocks load before they store), so the output may share a dying input's
// region.  (Cast changes the element size; movement and compute ops read other elements.)
bool in_place_ok(OpType op) {
    Category c = op_def(op).category;
    return c == Category::Unary || c == Category::Binary || c == Category::Select;
}

void plan_memory(Plan& plan, const std::vector<Node*>& order, int n_leaves, const std::vector<int>& last_use,
                 const std::unordered_set<int>& keep) {
    const int n = plan.n_slots;
    plan.offset.assign(size_t(n), -1);
    // The slot whose bytes each slot uses (itself, or through views, the viewed value).
    std::vector<int> root(static_cast<size_t>(n));
    std::vector<TensorInfo> info(static_cast<size_t>(n));
    for (int sl = 0; sl < n; ++sl) root[sl] = sl;
    std::vector<int> def(size_t(n), -1);
    const size_t n_steps = plan.steps.size();
    for (size_t k = 0; k < n_steps; ++k) {
        const Node* nd = order[size_t(plan.steps[k].node)];
        for (size_t o = 0; o < nd->output_infos.size(); ++o) {
            int sl = plan.steps[k].out_slots[o];
            def[sl] = int(k);
            info[sl] = plan.slot_info[size_t(sl)];
            if (is_free_view(nd->op)) root[sl] = root[plan.steps[k].in_slots[0]];
        }
    }
    // Per root: can it be planned, and when does its last alias die?
    std::vector<char> plannable(size_t(n), 1);
    std::vector<int> end(size_t(n), -1);
    for (int sl = 0; sl < n; ++sl) {
        int r = root[sl];
        if (r < n_leaves || keep.count(sl)) plannable[r] = 0;  // leaves and results keep their own buffers
        if (def[sl] >= 0 && plan.group_of[def[sl]] >= 0) plannable[r] = 0;  // a fused pass allocates its outputs
        if (def[sl] >= 0 && plan.on_device[size_t(def[sl])]) plannable[r] = 0;  // the device allocates its own
        end[r] = std::max(end[r], std::max(last_use[sl], def[sl]));
    }
    // Best-fit over free regions, in schedule order.
    std::vector<std::pair<int64_t, int64_t>> free_list;  // (offset, bytes), sorted by offset
    std::vector<std::vector<int>> release_after(n_steps);
    int64_t top = 0;
    auto release = [&](int64_t off, int64_t bytes) {
        auto it = std::lower_bound(free_list.begin(), free_list.end(), std::make_pair(off, int64_t(0)));
        it = free_list.insert(it, {off, bytes});
        if (it + 1 != free_list.end() && it->first + it->second == (it + 1)->first) {  // merge with the next
            it->second += (it + 1)->second;
            free_list.erase(it + 1);
        }
        if (it != free_list.begin() && (it - 1)->first + (it - 1)->second == it->first) {  // and the previous
            (it - 1)->second += it->second;
            free_list.erase(it);
        }
    };
    std::vector<char> handed_over(size_t(n), 0);  // a region passed on to an in-place output
    for (size_t k = 0; k < n_steps; ++k) {
        const Node* nd = order[size_t(plan.steps[k].node)];
        for (int sl : plan.steps[k].out_slots) {
            if (root[sl] != sl || !plannable[sl]) continue;
            int64_t bytes = region_bytes(info[sl]);
            // In place: an elementwise step may write over a full-size input whose last reader it
            // is (each output element depends only on the same element of its inputs).
            int reuse = -1;
            if (in_place_ok(nd->op))
                for (int in : plan.steps[k].in_slots) {
                    int r = root[in];
                    if (r >= n_leaves && plannable[r] && plan.offset[r] >= 0 && !handed_over[r] && end[r] == int(k) &&
                        info[in] == info[sl] && region_bytes(info[r]) == bytes) {
                        reuse = r;
                        break;
                    }
                }
            if (reuse >= 0) {
                handed_over[reuse] = 1;
                plan.offset[sl] = plan.offset[reuse];
                plan.unplanned_bytes += bytes;
                ++plan.planned_values;
                ++plan.in_place;
                release_after[size_t(end[sl])].push_back(sl);
                continue;
            }
            auto best = free_list.end();
            for (auto it = free_list.begin(); it != free_list.end(); ++it)
                if (it->second >= bytes && (best == free_list.end() || it->second < best->second)) best = it;
            int64_t off;
            if (best != free_list.end()) {
                off = best->first;
                if (best->second == bytes) free_list.erase(best);
                else { best->first += bytes; best->second -= bytes; }
            } else if (!free_list.empty() && free_list.back().first + free_list.back().second == top) {
                off = free_list.back().first;  // extend the free region at the top
                top = off + bytes;
                free_list.pop_back();
            } else {
                off = top;
                top += bytes;
            }
            plan.offset[sl] = off;
            plan.unplanned_bytes += bytes;
            ++plan.planned_values;
            release_after[size_t(end[sl])].push_back(sl);
        }
        for (int sl : release_after[k])
            if (!handed_over[sl]) release(plan.offset[sl], region_bytes(info[sl]));
    }
    plan.arena_bytes = top;
}

struct PlanCache {
    std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<Plan>> plans;
    PlanCacheStats stats;
    std::atomic<int64_t> spare_bytes{0};  // bytes of the arenas the plans keep
};

PlanCache& plan_cache() {
    static PlanCache c;
    return c;
}

Plan::~Plan() {
    if (spare_arena) plan_cache().spare_bytes -= arena_bytes;
}

bool elementwise(Category c) {
    return c == Category::Unary || c == Category::Binary || c == Category::Select || c == Category::Cast;
}

// A step can join a blocked pass of output shape `shape` when it is
// elementwise, involves no half types, and each input is full-size or a scalar.
bool fusible(const Node* n, const Shape& shape) {
    if (!elementwise(op_def(n->op).category) || n->output_infos.size() != 1) return false;
    const TensorInfo& out = n->output_infos[0];
    if (out.shape != shape || is_half(out.dtype)) return false;
    for (const VarPtr& in : n->inputs)
        if (is_half(in->info.dtype) || !(in->info.shape == shape || in->info.numel() == 1)) return false;
    return true;
}

void find_groups(Plan& plan, const std::vector<Node*>& order, const std::vector<int>& last_use,
                 const std::unordered_set<int>& keep) {
    const size_t n_steps = plan.steps.size();
    auto node = [&](size_t k) { return order[size_t(plan.steps[k].node)]; };
    plan.group_of.assign(n_steps, -1);
    size_t k = 0;
    while (k < n_steps) {
        const Shape& shape = node(k)->output_infos[0].shape;
        if (node(k)->output_infos.size() != 1 || numel(shape) < kMinFusedNumel || !fusible(node(k), shape)) { ++k; continue; }
        size_t end = k + 1;
        while (end < n_steps && fusible(node(end), shape)) ++end;
        if (end - k >= 2) {
            Group g{int(k), int(end - 1), numel(shape), {}};
            for (size_t s = k; s < end; ++s)
                for (int out : plan.steps[s].out_slots)
                    if (!keep.count(out) && last_use[out] >= 0 && last_use[out] < int(end)) g.scratch.insert(out);
            for (size_t s = k; s < end; ++s) plan.group_of[s] = int(plan.groups.size());
            plan.groups.push_back(std::move(g));
        }
        k = end;
    }
}

// Block view of a full-size tensor, or the scalar itself (as 0-d).
Tensor block_view(const Tensor& t, int64_t start, int64_t len) {
    Tensor v = t;
    if (t.numel() == 1) { v.info.shape = {}; return v; }
    v.offset_bytes += start * int64_t(dtype_size(t.dtype()));
    v.info.shape = {len};
    return v;
}

void run_group(const Plan& plan, const Group& g, const std::vector<Node*>& order, std::vector<Tensor>& slots) {
    // Materialised outputs of the group get full buffers; scratch ones never do.
    for (int s = g.first; s <= g.last; ++s)
        for (size_t o = 0; o < plan.steps[s].out_slots.size(); ++o) {
            int slot = plan.steps[s].out_slots[o];
            if (!g.scratch.count(slot)) slots[slot] = Tensor(order[size_t(plan.steps[s].node)]->output_infos[o]);
        }
    int64_t nblocks = (g.numel + kBlock - 1) / kBlock;
    parallel_for(nblocks, 1, [&](int64_t b0, int64_t b1) {
        std::unordered_map<int, Tensor> scratch;  // per thread: one block buffer per scratch slot
        for (int slot : g.scratch) {
            int s = 0;
            while (std::find(plan.steps[s].out_slots.begin(), plan.steps[s].out_slots.end(), slot) == plan.steps[s].out_slots.end()) ++s;
            scratch[slot] = Tensor(order[size_t(plan.steps[s].node)]->output_infos[0].dtype, {kBlock});
        }
        std::vector<Tensor> ins, outs;
        for (int64_t b = b0; b < b1; ++b) {
            int64_t start = b * kBlock, len = std::min(kBlock, g.numel - start);
            for (int s = g.first; s <= g.last; ++s) {
                const Step& st = plan.steps[s];
                ins.clear();
                outs.clear();
                for (int i : st.in_slots) {
                    auto it = scratch.find(i);
                    ins.push_back(it != scratch.end() ? block_view(it->second, 0, len) : block_view(slots[i], start, len));
                }
                for (int o : st.out_slots) {
                    auto it = scratch.find(o);
                    outs.push_back(it != scratch.end() ? block_view(it->second, 0, len) : block_view(slots[o], start, len));
                }
                run_kernel(order[size_t(st.node)]->op, plan.attrs_of(st, order), ins, outs);
            }
        }
    });
}

// Profiler labels (graph/profile.h): the op and the step with its operand and result infos.
ProfileStep step_label(const Plan& plan, size_t k, const std::vector<Node*>& order) {
    const Step& s = plan.steps[k];
    const Node* n = order[size_t(s.node)];
    ProfileStep p;
    p.op = op_def(n->op).name;
    // (stored infos: a channel-blocked value shows as 5-d, and its step as conv2d[nchw16c])
    if (n->op == OpType::Conv2d && !s.in_slots.empty() && !s.out_slots.empty() &&
        (plan.slot_info[size_t(s.in_slots[0])].shape.size() == 5 || plan.slot_info[size_t(s.out_slots[0])].shape.size() == 5))
        p.op += s.pre_node >= 0 ? "[nchw16c 1x1>dw]" : "[nchw16c]";
    if (s.epilogue >= 0)
        for (const EpilogueOp& e : plan.epilogues[size_t(s.epilogue)].ops) p.op += std::string("+") + epilogue_op_name(e.kind);
    p.node = "#" + std::to_string(k) + " " + p.op + " ";
    for (size_t o = 0; o < s.out_slots.size(); ++o) p.node += (o ? ", " : "") + info_str(plan.slot_info[size_t(s.out_slots[o])]);
    p.node += " <-";
    // (a fused 1x1 + depthwise step: the 1x1's inputs, then the depthwise's own after its input)
    const size_t own = s.pre_node >= 0 ? size_t(s.pre_inputs) + n->inputs.size() - 1 : n->inputs.size();
    for (size_t i = 0; i < own && i < s.in_slots.size(); ++i)
        p.node += (i ? ", " : " ") + info_str(plan.slot_info[size_t(s.in_slots[i])]);
    if (s.in_slots.size() > own) p.node += " (+" + std::to_string(s.in_slots.size() - own) + " epilogue operands)";
    return p;
}

ProfileStep group_label(const Plan& plan, const Group& g, const std::vector<Node*>& order) {
    std::string ops;
    for (int s = g.first; s <= g.last; ++s) ops += (s > g.first ? "," : "") + std::string(op_def(order[size_t(plan.steps[size_t(s)].node)]->op).name);
    ProfileStep p;
    p.op = "fused_elementwise";
    p.node = "#" + std::to_string(g.first) + " fused[" + ops + "] " +
             info_str(order[size_t(plan.steps[size_t(g.last)].node)]->output_infos[0]);
    return p;
}

double seconds_since(ProfileClock::time_point t0) {
    return std::chrono::duration<double>(ProfileClock::now() - t0).count();
}

std::atomic<int64_t> g_plan_ids{0};

}  // namespace

thread_local PlanMemoryStats t_last_memory;
thread_local PassCounts t_last_passes;

PlanMemoryStats last_plan_memory() { return t_last_memory; }
PassCounts last_plan_passes() { return t_last_passes; }

PlanCacheStats plan_cache_stats() {
    auto& c = plan_cache();
    std::lock_guard<std::mutex> lk(c.mu);
    c.stats.size = int64_t(c.plans.size());
    return c.stats;
}

void clear_plan_cache() {
    auto& c = plan_cache();
    std::lock_guard<std::mutex> lk(c.mu);
    c.plans.clear();
    c.stats = {};
}

namespace {

// The pending subgraph behind some Vars: its nodes in topological order and the computed
// values it reads (leaves).
struct Pending {
    std::vector<Node*> order;
    std::unordered_map<Node*, int> node_index;
    std::vector<VarImpl*> leaves;
    std::unordered_map<VarImpl*, int> leaf_index;
    std::vector<int> out_base;  // per node: the slot of its first output (slots 0..L-1 are the leaves)
    int n_slots = 0;
};

// 1. Collect pending nodes in topological order (iterative DFS).
Pending collect(const std::vector<VarPtr>& vars) {
    Pending p;
    for (const VarPtr& target : vars) {
        if (target->computed()) continue;
        if (!target->node)
            throw ValueError(fmt("cannot read placeholder '", target->name, "' ", info_str(target->info),
                                 ": it has no value; write() one first"));
        std::vector<std::pair<Node*, size_t>> stack{{target->node.get(), 0}};
        while (!stack.empty()) {
            auto& [n, i] = stack.back();
            if (i == 0 && p.node_index.count(n)) { stack.pop_back(); continue; }
            if (i < n->inputs.size()) {
                VarImpl* in = n->inputs[i++].get();
                if (in->computed()) {
                    if (!p.leaf_index.count(in)) { p.leaf_index[in] = int(p.leaves.size()); p.leaves.push_back(in); }
                } else if (!in->node) {
                    throw ValueError(fmt("cannot evaluate: placeholder '", in->name, "' ", info_str(in->info),
                                         " has no value; write() one first"));
                } else if (!p.node_index.count(in->node.get())) {
                    stack.push_back({in->node.get(), 0});
                }
            } else {
                p.node_index[n] = int(p.order.size());
                p.order.push_back(n);
                stack.pop_back();
            }
        }
    }
    p.out_base.resize(p.order.size());
    p.n_slots = int(p.leaves.size());
    for (size_t k = 0; k < p.order.size(); ++k) {
        p.out_base[k] = p.n_slots;
        p.n_slots += int(p.order[k]->output_infos.size());
    }
    return p;
}

// The slot of Var t's value in a plan of `p` (before aliasing).
int slot_of(const Pending& p, const VarPtr& t) { return p.out_base[size_t(p.node_index.at(t->node.get()))] + t->output_index; }

// 2-3. The structural key of `p` (leaf infos, then ops, output infos and wiring in order) and
//    its cached plan, or a new one.  A plan holds the schedule, lifetimes and fusion groups,
//    which depend on shapes and dtypes but not on attribute values (kernels read attrs from
//    the nodes at run time), so e.g. a new random seed reuses the plan.  Where a graph pass
//    relied on a value (equal attributes, a scalar 1), the plan carries a guard, checked
//    before the plan is reused.
std::shared_ptr<Plan> plan_for(const Pending& p, const std::vector<VarPtr>& vars) {
    auto input_ref = [&](const VarPtr& in, std::string& key) {
        auto it = p.leaf_index.find(in.get());
        if (it != p.leaf_index.end()) { key += 'L'; key += std::to_string(it->second); }
        else { key += 'N'; key += std::to_string(p.node_index.at(in->node.get())); key += '.'; key += std::to_string(in->output_index); }
        key += ',';
    };
    std::string key;
    key.reserve(p.order.size() * 24);
    for (VarImpl* l : p.leaves) { key += info_str(l->info); key += '|'; }
    bool has_conv = false;
    for (Node* n : p.order) {
        has_conv |= n->op == OpType::Conv2d;
        key += std::to_string(int(n->op));
        key += '(';
        for (const TensorInfo& o : n->output_infos) { key += info_str(o); key += ';'; }
        for (const VarPtr& in : n->inputs) input_ref(in, key);
        key += ')';
    }
    key += executor_config().fuse_elementwise ? "F" : "U";
    key += executor_config().plan_memory ? "M" : "A";
    Backend* device = executor_config().backend.get();
    if (device) { key += 'D'; key += device->name(); key += std::to_string(reinterpret_cast<uintptr_t>(device)); }
    key += 'P';  // which graph passes run (what they assume beyond structure is guarded, see passes.h)
    key += char('0' + (executor_config().passes & kAllPasses));
    // whether the layout pass blocks at the CPU level now in force (it may change between runs)
    if (has_conv && (executor_config().passes & pass_bit(Pass::Layout))) key += blocked_layout_pays() ? 'B' : 'b';
    for (const VarPtr& t : vars) {  // which outputs are wanted changes lifetimes
        if (t->computed()) continue;
        key += 'T';
        key += std::to_string(p.node_index.at(t->node.get()));
        key += '.';
        key += std::to_string(t->output_index);
    }

    auto& cache = plan_cache();
    {
        std::lock_guard<std::mutex> lk(cache.mu);
        auto it = cache.plans.find(key);
        // A plan whose passes relied on values that changed (guards) is rebuilt and replaced.
        if (it != cache.plans.end() && guards_hold(it->second->guards, it->second->attrs, p.order, p.leaves)) {
            ++cache.stats.hits;
            return it->second;
        }
    }
    auto plan = std::make_shared<Plan>();
    plan->id = ++g_plan_ids;
    plan->n_slots = p.n_slots;
    std::vector<int> targets;
    for (const VarPtr& t : vars)
        if (!t->computed()) targets.push_back(slot_of(p, t));
    // Graph passes rewrite the schedule; the plan is made from the steps that still run.
    PassProgram prog = make_pass_program(p.order, p.leaves, p.leaf_index, p.node_index, p.out_base, targets);
    // (Fused epilogues and blocked layouts are CPU kernels: with a device backend its ops stay as they are.)
    const uint32_t cpu_passes = pass_bit(Pass::ConvEpilogue) | pass_bit(Pass::MatMulEpilogue) | pass_bit(Pass::Layout);
    run_passes(prog, executor_config().passes & (device ? ~cpu_passes : kAllPasses));
    plan->alias = std::move(prog.alias);
    plan->attrs = std::move(prog.attrs);
    plan->guards = std::move(prog.guards);
    plan->epilogues = std::move(prog.epilogues);
    plan->slot_info = std::move(prog.slot_info);
    plan->passes = prog.counts;
    std::vector<int> last_use(size_t(p.n_slots), -1);
    for (PassStep& ps : prog.steps) {
        if (ps.dropped) continue;
        Step s;
        s.node = ps.node;
        s.attrs = ps.attrs;
        s.epilogue = ps.epilogue;
        s.pre_node = ps.pre_node;
        s.pre_attrs = ps.pre_attrs;
        s.pre_epilogue = ps.pre_epilogue;
        s.pre_inputs = ps.pre_inputs;
        s.in_slots = std::move(ps.in_slots);
        s.out_slots = std::move(ps.out_slots);
        for (int i : s.in_slots) last_use[size_t(i)] = int(plan->steps.size());
        plan->steps.push_back(std::move(s));
    }
    // Targets (their sources, when aliased) stay alive to the end; other intermediates die
    // after their last reader, or after their own step when nobody reads them.
    std::unordered_set<int> keep;
    for (int t : targets) keep.insert(plan->alias[size_t(t)]);
    for (size_t k = 0; k < plan->steps.size(); ++k)
        for (int sl : plan->steps[k].out_slots)
            if (!keep.count(sl) && last_use[size_t(sl)] < 0) last_use[size_t(sl)] = int(k);
    for (int sl = int(p.leaves.size()); sl < p.n_slots; ++sl)
        if (!keep.count(sl) && last_use[size_t(sl)] >= 0) plan->steps[size_t(last_use[size_t(sl)])].free_after.push_back(sl);
    // Which steps the device runs (the rest run on the CPU, with copies where values cross).
    plan->on_device.assign(plan->steps.size(), 0);
    if (device)
        for (size_t k = 0; k < plan->steps.size(); ++k) {
            const Node* nd = p.order[size_t(plan->steps[k].node)];
            std::vector<TensorInfo> in_infos;
            for (const VarPtr& in : nd->inputs) in_infos.push_back(in->info);
            plan->on_device[k] = device->supports(nd->op, in_infos);
        }
    // (Blocked elementwise passes are a CPU schedule: with a device they are left to it.)
    if (executor_config().fuse_elementwise && !device) find_groups(*plan, p.order, last_use, keep);
    else plan->group_of.assign(plan->steps.size(), -1);
    if (executor_config().plan_memory) plan_memory(*plan, p.order, int(p.leaves.size()), last_use, keep);
    else plan->offset.assign(size_t(p.n_slots), -1);
    std::lock_guard<std::mutex> lk(cache.mu);
    if (cache.plans.size() >= kMaxPlans) cache.plans.clear();  // bounded: a crude but safe eviction
    cache.plans[key] = plan;
    ++cache.stats.misses;
    return plan;
}

// 4. One run of a plan: its slots (leaves first), the copies of values that crossed between
//    the device and the CPU, and the arena of its planned intermediates.
struct PlanRun {
    Plan& plan;
    const std::vector<Node*>& order;
    Backend* device;
    std::vector<Tensor> slots, crossed;
    std::shared_ptr<Storage> arena;

    PlanRun(Plan& p, const std::vector<Node*>& o) : plan(p), order(o), device(executor_config().backend.get()) {
        slots.resize(size_t(p.n_slots));
        crossed.resize(size_t(p.n_slots));
    }
    // Slot `sl` where a step wants it: on the device or on the host (copied once per direction).
    const Tensor& on(int sl, bool want_device) {
        const Tensor& t = slots[size_t(sl)];
        if (!device) return t;
        bool is_device = t.storage && t.storage->device;
        if (is_device == want_device) return t;
        Tensor& c = crossed[size_t(sl)];
        if (!c.defined()) {
            if (want_device) { c = device_tensor(*device, t.info); device->upload(t, c); }
            else { c = Tensor(t.info); device->download(t, c); }
        }
        return c;
    }
    // Runs the steps (the leaves' slots filled): single steps one by one, groups as blocked
    // passes.  With a device backend, a value crossing between it and the CPU is copied once
    // per direction.
    void run_steps() {
        const bool prof = profiling();
        if (plan.arena_bytes > 0) {
            {
                std::lock_guard<std::mutex> lk(plan.arena_mu);
                arena = std::move(plan.spare_arena);
            }
            if (arena) plan_cache().spare_bytes -= plan.arena_bytes;
            else {
                arena = Storage::allocate(size_t(plan.arena_bytes));
                arena->rewritable = true;  // reused by the next run: no cache may key on it
            }
        }
        for (size_t k = 0; k < plan.steps.size();) {
            int g = plan.group_of[k];
            if (g >= 0) {
                const Group& grp = plan.groups[size_t(g)];
                const ProfileClock::time_point t0 = prof ? ProfileClock::now() : ProfileClock::time_point();
                run_group(plan, grp, order, slots);
                if (prof) profile_step(plan.id, int64_t(k), seconds_since(t0), [&] { return group_label(plan, grp, order); });
                for (int s = grp.first; s <= grp.last; ++s)
                    for (int f : plan.steps[size_t(s)].free_after) slots[size_t(f)] = Tensor();
                k = size_t(grp.last) + 1;
                continue;
            }
            const Step& s = plan.steps[k];
            Node* n = order[size_t(s.node)];
            bool dev = plan.on_device[k];
            std::vector<Tensor> ins;
            ins.reserve(s.in_slots.size());
            for (int i : s.in_slots) ins.push_back(on(i, dev));
            std::vector<Tensor> outs(s.out_slots.size());
            if (dev) {
                device->run(n->op, plan.attrs_of(s, order), ins, outs, n->output_infos);
                for (size_t o = 0; o < outs.size(); ++o) slots[size_t(s.out_slots[o])] = std::move(outs[o]);
                for (int f : s.free_after) slots[size_t(f)] = crossed[size_t(f)] = Tensor();
                ++k;
                continue;
            }
            for (size_t o = 0; o < outs.size(); ++o) {  // planned outputs (never a view's) live in the arena
                int64_t off = plan.offset[size_t(s.out_slots[o])];
                if (off < 0) continue;
                outs[o].info = plan.slot_info[size_t(s.out_slots[o])];
                outs[o].storage = arena;
                outs[o].offset_bytes = off;
            }
            const ProfileClock::time_point t0 = prof ? ProfileClock::now() : ProfileClock::time_point();
            if (s.epilogue >= 0) {  // a convolution or matmul with its elementwise chain fused
                if (!outs[0].defined()) outs[0] = Tensor(plan.slot_info[size_t(s.out_slots[0])]);
                if (n->op == OpType::MatMul) {
                    matmul_fused(plan.attrs_of(s, order), ins, plan.epilogues[size_t(s.epilogue)], outs[0]);
                } else if (s.pre_node >= 0) {  // a 1x1 convolution, then this depthwise one, row by row
                    const std::vector<Tensor> pre_ins(ins.begin(), ins.begin() + s.pre_inputs);
                    std::vector<Tensor> dw_ins{Tensor()};  // (its input is the 1x1's output, never stored)
                    dw_ins.insert(dw_ins.end(), ins.begin() + s.pre_inputs, ins.end());
                    const Attrs& pre_attrs =
                        s.pre_attrs >= 0 ? plan.attrs[size_t(s.pre_attrs)] : order[size_t(s.pre_node)]->attrs;
                    conv2d_expand_depthwise(pre_attrs, pre_ins, plan.epilogues[size_t(s.pre_epilogue)],
                                            plan.attrs_of(s, order), dw_ins, plan.epilogues[size_t(s.epilogue)],
                                            outs[0]);
                } else {
                    conv2d_fused(plan.attrs_of(s, order), ins, plan.epilogues[size_t(s.epilogue)], outs[0]);
                }
            } else {
                run_node(n->op, plan.attrs_of(s, order), ins, outs, n->output_infos);
            }
            if (prof) profile_step(plan.id, int64_t(k), seconds_since(t0), [&] { return step_label(plan, k, order); });
            for (size_t o = 0; o < outs.size(); ++o) slots[size_t(s.out_slots[o])] = std::move(outs[o]);
            for (int f : s.free_after) slots[size_t(f)] = crossed[size_t(f)] = Tensor();
            ++k;
        }
    }
    // The value of (pre-alias) slot `sl` on the host: results live there.
    Tensor result(int sl) { return on(plan.alias[size_t(sl)], false); }
    // Hands the arena back for the next run, unless something still holds a view of it.
    void finish() {
        slots.clear();
        crossed.clear();
        if (arena && arena.use_count() == 1 &&
            plan_cache().spare_bytes.fetch_add(plan.arena_bytes) + plan.arena_bytes <= kSpareArenaBudget) {
            std::lock_guard<std::mutex> lk(plan.arena_mu);
            if (!plan.spare_arena) plan.spare_arena = std::move(arena);
            else plan_cache().spare_bytes -= plan.arena_bytes;  // (another run returned one first)
        } else if (arena && arena.use_count() == 1) {
            plan_cache().spare_bytes -= plan.arena_bytes;  // over the budget: freed with `arena`
        }
        arena.reset();
    }
};

}  // namespace

void evaluate(const std::vector<VarPtr>& vars) {
    const bool prof = profiling();
    const ProfileClock::time_point t_run = prof ? ProfileClock::now() : ProfileClock::time_point();
    Pending p = collect(vars);
    if (p.order.empty()) return;
    std::shared_ptr<Plan> plan = plan_for(p, vars);
    t_last_passes = plan->passes;

    PlanRun run(*plan, p.order);
    for (size_t l = 0; l < p.leaves.size(); ++l) run.slots[l] = p.leaves[l]->value;
    run.run_steps();

    PlanMemoryStats mem{plan->arena_bytes, plan->unplanned_bytes, plan->planned_values, 0, plan->in_place};
    for (const VarPtr& t : vars)
        if (!t->computed()) mem.result_bytes += int64_t(t->info.numel() * int64_t(dtype_size(t->info.dtype)));
    t_last_memory = mem;

    // 5. Publish results; drop history nobody needs (DESIGN §4).
    for (const VarPtr& t : vars) {
        if (t->computed()) continue;
        t->value = run.result(slot_of(p, t));
        t->epoch = executor_config().placeholder_epoch;
        if (!t->requires_grad && !t->from_placeholder) t->node.reset();
    }
    run.finish();
    if (prof) profile_run(seconds_since(t_run));
}

// ---- a prepared graph run many times (loop bodies) ------------------------------------------------

struct PreparedRun::State {
    std::vector<VarPtr> outs, inputs;
    Pending pending;
    std::shared_ptr<Plan> plan;
    std::vector<int> out_slot;    // per output: its slot, or -1 (computed: an input or a constant)
};

PreparedRun::PreparedRun(std::vector<VarPtr> outs, std::vector<VarPtr> inputs) : s_(std::make_shared<State>()) {
    State& st = *s_;
    st.outs = std::move(outs);
    st.inputs = std::move(inputs);
    st.pending = collect(st.outs);
    for (const VarPtr& o : st.outs) st.out_slot.push_back(o->computed() ? -1 : slot_of(st.pending, o));
    if (!st.pending.order.empty()) st.plan = plan_for(st.pending, st.outs);
}

std::vector<Tensor> PreparedRun::run(const std::vector<Tensor>& input_values) {
    const bool prof = profiling();
    const ProfileClock::time_point t_run = prof ? ProfileClock::now() : ProfileClock::time_point();
    State& st = *s_;
    MNN_CHECK_VALUE(input_values.size() == st.inputs.size(), "prepared run: expected ", st.inputs.size(), " inputs");
    for (size_t k = 0; k < st.inputs.size(); ++k) {
        MNN_CHECK_VALUE(input_values[k].info == st.inputs[k]->info, "prepared run: input ", k, " must be ",
                        info_str(st.inputs[k]->info), ", got ", info_str(input_values[k].info));
        st.inputs[k]->value = input_values[k];  // (guards below read the leaves' values)
    }
    std::vector<Tensor> r(st.outs.size());
    if (st.plan) {
        if (!guards_hold(st.plan->guards, st.plan->attrs, st.pending.order, st.pending.leaves))
            st.plan = plan_for(st.pending, st.outs);  // a pass relied on a value that changed
        PlanRun run(*st.plan, st.pending.order);
        for (size_t l = 0; l < st.pending.leaves.size(); ++l) run.slots[l] = st.pending.leaves[l]->value;
        run.run_steps();
        for (size_t j = 0; j < st.outs.size(); ++j)
            if (st.out_slot[j] >= 0) r[j] = run.result(st.out_slot[j]);
        run.finish();
    }
    for (size_t j = 0; j < st.outs.size(); ++j)
        if (st.out_slot[j] < 0) r[j] = st.outs[j]->value;  // an input (its new value) or a constant
    for (const VarPtr& in : st.inputs) in->value = Tensor();  // (the caller's buffers are not kept alive)
    if (prof && st.plan) profile_run(seconds_since(t_run));
    return r;
}

}  // namespace mnn
