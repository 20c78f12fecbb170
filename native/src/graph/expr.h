// The expression graph behind every Var.
//
// A VarImpl is one value: its info (dtype, shape) is always known; its tensor
// is present once computed.  `node` is the producing op, kept only while
// someone may need it (DESIGN §4): while the value is lazy and unevaluated,
// while it depends on a Var that gradients are wanted for, or while it depends
// on a placeholder (a new write() makes it recompute, as in MNN).  Eager values with
// no such dependency drop their history, so NumPy-style loops run in
// constant memory.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/registry.h"
#include "core/tensor.h"

namespace mnn {

struct Node;
struct VarImpl;
using VarPtr = std::shared_ptr<VarImpl>;

enum class VarKind : uint8_t { Const, Placeholder, Trainable, Op };

class Backend;  // backend/backend.h

// Global executor switches (the registry's sibling; not per-op state).
struct ExecutorConfig {
    // The device planned graphs run on where it supports an op (null: the CPU only).
    std::shared_ptr<Backend> backend;
    bool lazy = false;
    bool fuse_elementwise = true;  // run elementwise chains as blocked passes (part of the plan key)
    bool plan_memory = true;       // intermediates share one arena at planned offsets (part of the plan key)
    uint32_t passes = 0x3F;        // graph passes run on new plans (all six), one bit per mnn::Pass (passes.h; part of the plan key)
    uint64_t placeholder_epoch = 0;  // bumped by every placeholder write: older derived values are stale
    int64_t max_model_value_bytes = int64_t(1) << 34;  // a loaded model's values above this are refused (16 GiB)
};
ExecutorConfig& executor_config();

struct VarImpl {
    TensorInfo info;
    Tensor value;                // defined once computed
    std::shared_ptr<Node> node;  // producer; null for leaves and dropped history
    int output_index = 0;
    VarKind kind = VarKind::Const;
    bool requires_grad = false;     // this value or one it depends on wants gradients
    bool from_placeholder = false;  // depends on a placeholder: keeps history, recomputed after writes
    uint64_t epoch = 0;             // placeholder_epoch when `value` was computed
    std::string name;

    bool computed() const {
        return value.defined() && (!from_placeholder || epoch == executor_config().placeholder_epoch);
    }
};

struct Node {
    OpType op;
    Attrs attrs;
    std::vector<VarPtr> inputs;
    std::vector<std::weak_ptr<VarImpl>> outputs;  // filled when a lazy multi-output node is computed
    std::vector<TensorInfo> output_infos;
    // Frees long chains iteratively: recursive shared_ptr teardown of a
    // 100k-op history would overflow the stack.
    ~Node();
};


// Builds attrs for `op` from positional values in schema order (defaults filled
// by the caller).  The Python binding does the name-based parsing.
Attrs make_attrs(OpType op, std::vector<AttrValue> values);
const Attrs& empty_attrs(OpType op);  // for ops without attributes

// Applies an op: infers output infos, then computes now (eager, inputs all
// computed) or records a lazy node.
std::vector<VarPtr> apply(OpType op, const std::vector<VarPtr>& inputs, const Attrs& attrs);
VarPtr apply1(OpType op, const std::vector<VarPtr>& inputs, const Attrs& attrs);

// Records `op` on `inputs` with its outputs already computed (`values`, one per output, of the
// inferred infos): eager control flow runs its Python functions directly and records the if/loop
// op that computes what they gave.  The node is kept by apply's rule (while an input requires
// gradients or depends on a placeholder, or in lazy mode); the values are used as they are.
std::vector<VarPtr> apply_computed(OpType op, const std::vector<VarPtr>& inputs, const Attrs& attrs,
                                   std::vector<Tensor> values);

VarPtr make_const(Tensor t, std::string name = "");
VarPtr make_placeholder(TensorInfo info, std::string name = "");

// Ops whose output is a view of their input (shares its bytes): run_node returns the view,
// and the memory planner keeps the input's region alive as long as the view.
inline bool is_free_view(OpType op) { return op == OpType::Reshape; }

// Allocates the outputs not given (or makes a free view) and runs one op's kernel.
void run_node(OpType op, const Attrs& attrs, const std::vector<Tensor>& ins, std::vector<Tensor>& outs,
              const std::vector<TensorInfo>& infos);

// Computes every listed Var that is not computed yet: collects the pending
// subgraph, finds (or builds) a cached plan for its structure and runs it in
// one native call.
void evaluate(const std::vector<VarPtr>& vars);
const Tensor& value_of(const VarPtr& v);  // evaluates if needed

// A pending subgraph prepared once and run many times with new values for some of its leaves:
// `outs` are the lazy Vars to compute, `inputs` computed leaves (e.g. make_const) among what
// they read.  Each run() gives the inputs new values of the same infos and returns the outputs'
// values, running the cached plan directly (no graph walk, key or node creation): loop bodies
// run this way, iteration after iteration.
class PreparedRun {
public:
    PreparedRun(std::vector<VarPtr> outs, std::vector<VarPtr> inputs);
    std::vector<Tensor> run(const std::vector<Tensor>& input_values);

private:
    struct State;
    std::shared_ptr<State> s_;
};

// Plan-cache statistics (tests check that repeated reads reuse plans).
struct PlanCacheStats { int64_t hits = 0, misses = 0, size = 0; };
PlanCacheStats plan_cache_stats();

// Memory of the last evaluated plan (this thread): the arena that holds its
// planned intermediates (peak bytes at the planned offsets), what they would
// take each in a buffer of its own, the bytes of the results, and how many
// values were computed in place (over a dying input's region).
struct PlanMemoryStats { int64_t arena_bytes = 0, unplanned_bytes = 0, planned_values = 0, result_bytes = 0, in_place = 0; };
PlanMemoryStats last_plan_memory();
void clear_plan_cache();

}  // namespace mnn
