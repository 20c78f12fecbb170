// Running a loaded .mnnx graph on Vars: each node goes through mnn::apply, so the
// shape rules re-infer every shape from the inputs given (dynamic dims), and the
// executor plans and runs the whole graph in one call when the mode is lazy.
#pragma once
#include <vector>

#include "format/mnnx.h"
#include "graph/expr.h"

namespace mnn::mnnx {

// Checks `inputs` against the graph's declared inputs (count, dtype, rank,
// static dims), builds the graph on them and returns the output Vars.  Each
// node's inferred outputs are checked against the file's declared values.
// `states` (one per g.states entry) replace those constants' stored values.
std::vector<VarPtr> run_graph(const GraphDef& g, const std::vector<VarPtr>& inputs,
                              const std::vector<VarPtr>& states = {});

// Sets the executor's lazy switch for a scope (the runtime runs whole graphs lazily).
struct LazyScope {
    bool saved;
    explicit LazyScope(bool on) : saved(executor_config().lazy) { executor_config().lazy = on; }
    ~LazyScope() { executor_config().lazy = saved; }
    LazyScope(const LazyScope&) = delete;
    LazyScope& operator=(const LazyScope&) = delete;
};

}  // namespace mnn::mnnx
