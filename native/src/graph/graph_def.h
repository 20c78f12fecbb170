// GraphDef: a graph of op-table primitives as plain data — values, nodes in
// execution order, inputs, outputs and constants.  It is what the .mnnx format
// stores (format/mnnx.h), what the runtime runs, and the body of a control-flow
// op (If/Loop attributes of type graph).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/attrs.h"
#include "core/registry.h"
#include "core/tensor.h"
#include "graph/expr.h"

namespace mnn {

constexpr int64_t kDynamicDim = -1;  // a dimension whose size is given at run time

// How a constant's values are stored in a file (it is decoded to its value's dtype at load).
enum class Encoding : uint8_t { Raw = 0, Float16 = 1, Int8 = 2 };

struct ValueDef {
    std::string name;
    DType dtype = DType::Float32;
    std::vector<int64_t> shape;  // kDynamicDim for dynamic dims
};

struct ConstDef {
    int value = 0;
    Tensor tensor;                      // the value's dtype and shape
    Encoding encoding = Encoding::Raw;  // how a file stores it
};

struct NodeDef {
    OpType op{};
    Attrs attrs;
    std::vector<int> inputs, outputs;  // value indices
};

struct GraphDef {
    std::vector<ValueDef> values;
    std::vector<NodeDef> nodes;  // in execution order
    std::vector<int> inputs, outputs;
    std::vector<ConstDef> constants;
    std::vector<std::pair<int, int>> states;  // (constant value, output value holding its next value)
};

// Checks a graph's structure: indices in range, values defined once before use,
// arities, constants and states consistent.  Throws ValueError naming `what`.
void validate(const GraphDef& g, const char* what = "graph");

// Checks `inputs` against the graph's declared inputs (count, dtype, rank,
// static dims), builds the graph on them with mnn::apply and returns the
// output Vars.  Each node's output infos are checked (declared dtype/static
// dims, size limit) before the node runs.  `states` (one per g.states entry)
// replace those constants' stored values.
std::vector<VarPtr> run_graph(const GraphDef& g, const std::vector<VarPtr>& inputs,
                              const std::vector<VarPtr>& states = {});

// The output infos the graph computes from inputs of these infos (shape rules
// only, nothing runs).
std::vector<TensorInfo> infer_graph(const GraphDef& g, const std::vector<TensorInfo>& inputs, const char* what);

// Runs the graph on tensors in one planned native call (the body of If/Loop).
std::vector<Tensor> run_graph_tensors(const GraphDef& g, const std::vector<Tensor>& inputs);

// A graph run on tensors through plans prepared once per input signature (the runtime's Model,
// and a loaded model called from Python on computed inputs): later runs with that signature run
// the cached plan directly, with no node creation, graph walk or plan key (a change of the
// executor settings prepares anew).  `values` are the inputs, then the current values of the
// graph's `n_states` states.  Not thread-safe.
class PreparedGraph {
public:
    explicit PreparedGraph(const GraphDef* g) : g_(g) {}
    std::vector<Tensor> run(const std::vector<Tensor>& values, size_t n_states);

private:
    // What a prepared plan depends on besides the inputs' infos: the executor settings that are
    // part of the plan key (passes, elementwise fusion, memory planning, the backend).
    struct Key {
        std::vector<TensorInfo> infos;
        uint32_t passes;
        bool fuse, plan_memory;
        const void* backend;
        bool blocked;  // blocked_layout_pays() (the CPU level may change between runs)
        bool operator==(const Key& o) const {
            return infos == o.infos && passes == o.passes && fuse == o.fuse && plan_memory == o.plan_memory &&
                   backend == o.backend && blocked == o.blocked;
        }
    };
    const GraphDef* g_;
    std::vector<std::pair<Key, std::unique_ptr<PreparedRun>>> prepared_;
    static constexpr size_t kMaxPrepared = 8;
};

// Sets the executor's lazy switch for a scope.
struct LazyScope {
    bool saved;
    explicit LazyScope(bool on) : saved(executor_config().lazy) { executor_config().lazy = on; }
    ~LazyScope() { executor_config().lazy = saved; }
    LazyScope(const LazyScope&) = delete;
    LazyScope& operator=(const LazyScope&) = delete;
};

}  // namespace mnn
