#include "graph/expr.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace mnn {

ExecutorConfig& executor_config() {
    static ExecutorConfig cfg;
    return cfg;
}

Attrs make_attrs(OpType op, std::vector<AttrValue> values) {
    const OpDef& d = op_def(op);
    Attrs a;
    a.op = op;
    a.schema = &d.schema;
    a.op_name = d.name;
    a.values = std::move(values);
    return a;
}

const Attrs& empty_attrs(OpType op) {
    static std::vector<Attrs> table = [] {
        std::vector<Attrs> t;
        for (const OpDef& d : all_ops()) {
            Attrs a;
            a.op = d.type;
            a.schema = &d.schema;
            a.op_name = d.name;
            t.push_back(a);
        }
        return t;
    }();
    return table[int(op)];
}

VarPtr make_const(Tensor t, std::string name) {
    auto v = std::make_shared<VarImpl>();
    v->info = t.info;
    v->value = std::move(t);
    v->kind = VarKind::Const;
    v->name = std::move(name);
    return v;
}

VarPtr make_placeholder(TensorInfo info, std::string name) {
    for (int64_t d : info.shape)
        MNN_CHECK_VALUE(d >= 0, "placeholder: dimensions must be >= 0, got ", shape_str(info.shape));
    auto v = std::make_shared<VarImpl>();
    v->info = std::move(info);
    v->kind = VarKind::Placeholder;
    v->name = std::move(name);
    return v;
}

// Reshape of a computed value shares its bytes instead of copying.
static bool is_free_view(OpType op) { return op == OpType::Reshape; }

static void run_node(OpType op, const Attrs& attrs, const std::vector<Tensor>& ins, std::vector<Tensor>& outs,
                     const std::vector<TensorInfo>& infos) {
    if (is_free_view(op)) { outs[0] = ins[0].view(infos[0].shape); return; }
    for (size_t i = 0; i < infos.size(); ++i) outs[i] = Tensor(infos[i]);
    run_kernel(op, attrs, ins, outs);
}

std::vector<VarPtr> apply(OpType op, const std::vector<VarPtr>& inputs, const Attrs& attrs) {
    // Scratch reused across calls: eager per-op overhead is dominated by allocations.
    thread_local std::vector<TensorInfo> in_infos;
    in_infos.clear();
    bool all_computed = true, rg = false;
    for (const VarPtr& v : inputs) {
        if (!v) throw TypeError(fmt(op_def(op).name, ": an input is None"));
        in_infos.push_back(v->info);
        all_computed &= v->computed();
        rg |= v->requires_grad;
    }
    std::vector<TensorInfo> out_infos = infer(op, attrs, in_infos);
    std::vector<VarPtr> outs(out_infos.size());
    bool eager = all_computed && !executor_config().lazy;
    std::shared_ptr<Node> node;
    if (!eager || rg) {
        node = std::make_shared<Node>();
        node->op = op;
        node->attrs = attrs;
        node->inputs = inputs;
        node->output_infos = out_infos;
    }
    std::vector<Tensor> results;
    if (eager) {
        thread_local std::vector<Tensor> ins;
        ins.clear();
        for (const VarPtr& v : inputs) ins.push_back(v->value);
        results.resize(out_infos.size());
        run_node(op, attrs, ins, results, out_infos);
        ins.clear();  // drop references to input storage now
    }
    for (size_t i = 0; i < outs.size(); ++i) {
        auto v = std::make_shared<VarImpl>();
        v->info = out_infos[i];
        v->kind = VarKind::Op;
        v->requires_grad = rg;
        v->node = node;
        v->output_index = int(i);
        if (eager) v->value = std::move(results[i]);
        outs[i] = std::move(v);
    }
    if (node)
        for (auto& o : outs) node->outputs.push_back(o);
    return outs;
}

VarPtr apply1(OpType op, const std::vector<VarPtr>& inputs, const Attrs& attrs) {
    auto outs = apply(op, inputs, attrs);
    if (outs.size() != 1) throw ValueError(fmt(op_def(op).name, ": expected one output"));
    return outs[0];
}

// ---- lazy evaluation ----------------------------------------------------------

namespace {

struct Step {
    std::vector<int> in_slots, out_slots;
    std::vector<int> free_after;  // slots whose last reader is this step
};

struct Plan {
    std::vector<Step> steps;
    int n_slots = 0;
};

struct PlanCache {
    std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<Plan>> plans;
    PlanCacheStats stats;
};

PlanCache& plan_cache() {
    static PlanCache c;
    return c;
}

}  // namespace

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

void evaluate(const std::vector<VarPtr>& vars) {
    // 1. Collect pending nodes in topological order (iterative DFS).
    std::vector<Node*> order;
    std::unordered_map<Node*, int> node_index;
    std::vector<VarImpl*> leaves;  // computed Vars the subgraph reads
    std::unordered_map<VarImpl*, int> leaf_index;
    std::unordered_set<Node*> visiting;

    for (const VarPtr& target : vars) {
        if (target->computed()) continue;
        if (!target->node)
            throw ValueError(fmt("cannot read placeholder '", target->name, "' ", info_str(target->info),
                                 ": it has no value; write() one first"));
        std::vector<std::pair<Node*, size_t>> stack{{target->node.get(), 0}};
        while (!stack.empty()) {
            auto& [n, i] = stack.back();
            if (i == 0) {
                if (node_index.count(n)) { stack.pop_back(); continue; }
                visiting.insert(n);
            }
            if (i < n->inputs.size()) {
                VarImpl* in = n->inputs[i++].get();
                if (in->computed()) {
                    if (!leaf_index.count(in)) { leaf_index[in] = int(leaves.size()); leaves.push_back(in); }
                } else if (!in->node) {
                    throw ValueError(fmt("cannot evaluate: placeholder '", in->name, "' ", info_str(in->info),
                                         " has no value; write() one first"));
                } else if (!node_index.count(in->node.get())) {
                    stack.push_back({in->node.get(), 0});
                }
            } else {
                node_index[n] = int(order.size());
                order.push_back(n);
                stack.pop_back();
            }
        }
    }
    if (order.empty()) return;

    // 2. Structural key: ops, attrs, leaf infos and wiring.
    std::string key;
    key.reserve(order.size() * 24);
    for (VarImpl* l : leaves) { key += info_str(l->info); key += '|'; }
    for (Node* n : order) {
        key += std::to_string(int(n->op));
        key += '(';
        n->attrs.append_key(key);
        for (const VarPtr& in : n->inputs) {
            auto it = leaf_index.find(in.get());
            if (it != leaf_index.end() && in->computed()) key += "L" + std::to_string(it->second);
            else key += "N" + std::to_string(node_index[in->node.get()]) + "." + std::to_string(in->output_index);
            key += ',';
        }
        key += ')';
    }

    // 3. Find or build the plan: slots 0..L-1 are leaves, then node outputs.
    auto& cache = plan_cache();
    std::shared_ptr<Plan> plan;
    {
        std::lock_guard<std::mutex> lk(cache.mu);
        auto it = cache.plans.find(key);
        if (it != cache.plans.end()) { plan = it->second; ++cache.stats.hits; }
    }
    std::vector<int> out_base(order.size());
    int slot = int(leaves.size());
    for (size_t k = 0; k < order.size(); ++k) { out_base[k] = slot; slot += int(order[k]->output_infos.size()); }
    auto slot_of = [&](const VarPtr& in) {
        auto it = leaf_index.find(in.get());
        if (it != leaf_index.end() && in->computed()) return it->second;
        return out_base[node_index[in->node.get()]] + in->output_index;
    };
    if (!plan) {
        plan = std::make_shared<Plan>();
        plan->n_slots = slot;
        std::vector<int> last_use(slot, -1);
        for (size_t k = 0; k < order.size(); ++k) {
            Step s;
            for (const VarPtr& in : order[k]->inputs) {
                s.in_slots.push_back(slot_of(in));
                last_use[s.in_slots.back()] = int(k);
            }
            for (size_t o = 0; o < order[k]->output_infos.size(); ++o) s.out_slots.push_back(out_base[k] + int(o));
            plan->steps.push_back(std::move(s));
        }
        // Targets stay alive to the end; other intermediates are freed after their last reader.
        std::unordered_set<int> keep;
        for (const VarPtr& t : vars)
            if (!t->computed()) keep.insert(out_base[node_index[t->node.get()]] + t->output_index);
        for (int sl = int(leaves.size()); sl < slot; ++sl)
            if (!keep.count(sl) && last_use[sl] >= 0) plan->steps[last_use[sl]].free_after.push_back(sl);
        std::lock_guard<std::mutex> lk(cache.mu);
        cache.plans.emplace(key, plan);
        ++cache.stats.misses;
    }

    // 4. Run.
    std::vector<Tensor> slots(plan->n_slots);
    for (size_t l = 0; l < leaves.size(); ++l) slots[l] = leaves[l]->value;
    for (size_t k = 0; k < order.size(); ++k) {
        const Step& s = plan->steps[k];
        Node* n = order[k];
        std::vector<Tensor> ins;
        ins.reserve(s.in_slots.size());
        for (int i : s.in_slots) ins.push_back(slots[i]);
        std::vector<Tensor> outs(s.out_slots.size());
        run_node(n->op, n->attrs, ins, outs, n->output_infos);
        for (size_t o = 0; o < outs.size(); ++o) slots[s.out_slots[o]] = std::move(outs[o]);
        for (int f : s.free_after) slots[f] = Tensor();
    }

    // 5. Publish results; drop history nobody needs (DESIGN §4).
    for (const VarPtr& t : vars) {
        if (t->computed()) continue;
        t->value = slots[out_base[node_index[t->node.get()]] + t->output_index];
        if (!t->requires_grad) t->node.reset();
    }
}

const Tensor& value_of(const VarPtr& v) {
    if (!v->computed()) evaluate({v});
    return v->value;
}

}  // namespace mnn
