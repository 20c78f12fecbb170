// Graph passes over a lazy plan's schedule (run by executor.cc when it builds a plan).
//
// The passes rewrite the *schedule*, never the user's Nodes or VarImpls (other Vars and
// autograd share them).  A pass may
//   - alias a step's output slots to slots that already hold the same value (the step is
//     dropped: no kernel runs, its readers read the other slot),
//   - point a step at other input slots or give it attributes of its own (kept by the plan),
//   - drop a step nobody reads.
// Every pass resolves input slots through `alias` first, so after the passes no step reads
// an aliased slot; only the published results look through `alias`.  Lifetimes, fusion
// groups and the memory plan are computed afterwards, on the rewritten schedule, so they
// see the aliases as ordinary extra readers of the source slot.
//
// Plans are cached by structure (ops, shapes, dtypes, wiring).  Where a pass relies on more
// than structure (two nodes' attributes are equal, a transpose's permutation, a scalar leaf
// is 1), it records a Guard; a cached plan is reused only while its guards hold, and is
// rebuilt (and replaced) otherwise.  The key itself stays value-free.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/expr.h"
#include "ops/conv_epilogue.h"

namespace mnn {

// The passes, in the order they run.  `ExecutorConfig::passes` holds one bit per pass.
enum class Pass : uint8_t { Simplify, CSE, DCE, ConvEpilogue, MatMulEpilogue, Layout, kCount };
constexpr int kNumPasses = int(Pass::kCount);
const char* pass_name(Pass p);  // "simplify", "cse", "dce", "conv_epilogue", "matmul_epilogue", "layout"
bool pass_from_name(const std::string& name, Pass* out);
inline uint32_t pass_bit(Pass p) { return 1u << unsigned(p); }
constexpr uint32_t kAllPasses = (1u << kNumPasses) - 1;

// One step of the schedule as the passes see it.
struct PassStep {
    int node = 0;                       // index into `order`
    std::vector<int> in_slots, out_slots;
    int attrs = -1;                     // index into PassProgram::attrs (attributes made by a pass), or -1
    int epilogue = -1;                  // a conv2d / matmul step running PassProgram::epilogues[epilogue] on its output
    bool dropped = false;               // aliased away, dead or fused into another step: not run
    // (layout pass) A blocked 1x1 convolution whose output only this depthwise step reads runs inside
    // it, a few rows at a time (ops/conv_blocked.h): its node, attributes, epilogue and the number of
    // its inputs, which come first in in_slots (then the depthwise's weight, bias and operands).
    int pre_node = -1, pre_attrs = -1, pre_epilogue = -1, pre_inputs = 0;
};

// A fact beyond the structural key that a plan relies on.
struct Guard {
    enum Kind : uint8_t {
        SameAttrs,  // nodes a and b have equal attributes
        AttrsAre,   // node a has attributes PassProgram::attrs[b]
        LeafBits,   // leaf a (one element) has exactly the bytes `bits`
    } kind;
    int a = 0, b = 0;
    uint64_t bits = 0;
};

struct PassCounts {
    int64_t cse = 0;       // steps merged into an earlier equal step
    int64_t simplify = 0;  // rewrites (identity ops aliased, reshape/transpose chains shortened)
    int64_t dce = 0;       // steps dropped because no result needs them
    int64_t guards = 0;    // value facts the plan depends on
    int64_t conv_epilogue = 0;  // elementwise steps fused into a convolution's epilogue
    int64_t matmul_epilogue = 0;  // elementwise steps fused into a matmul's epilogue
    int64_t layout = 0;           // convolution steps running channel-blocked (reading or writing NCHW16c)
};

struct PassProgram {
    const std::vector<Node*>* order = nullptr;
    const std::vector<VarImpl*>* leaves = nullptr;  // slots [0, leaves.size()) are the leaves
    std::vector<TensorInfo> slot_info;               // per slot (how it is stored: the layout pass blocks some)
    std::vector<PassStep> steps;                     // initially one per node, in order
    std::vector<int> alias;                          // per slot: the slot holding its value (itself if none)
    std::vector<int> targets;                        // slots read out
    std::vector<Attrs> attrs;                        // attributes made or recorded by the passes
    std::vector<Guard> guards;
    std::vector<ConvEpilogue> epilogues;             // fused convolution / matmul epilogues (PassStep::epilogue)
    PassCounts counts;

    int n_leaves() const { return int(leaves->size()); }
    const Attrs& attrs_of(const PassStep& s) const { return s.attrs >= 0 ? attrs[size_t(s.attrs)] : (*order)[size_t(s.node)]->attrs; }
};

// A program of one step per node of `order` (slots: leaves, then each node's outputs in order).
PassProgram make_pass_program(const std::vector<Node*>& order, const std::vector<VarImpl*>& leaves,
                              const std::unordered_map<VarImpl*, int>& leaf_index,
                              const std::unordered_map<Node*, int>& node_index, const std::vector<int>& out_base,
                              std::vector<int> targets);

// The passes.  Each can run alone; run_passes runs the enabled ones (bits of `enabled`) in
// the order of `Pass` and leaves every step's inputs and every alias fully resolved.
void simplify_pass(PassProgram& p);  // x*1, 1*x, x/1, x+(-0.0), x-0, int x+0; reshape/transpose/cast chains and identities
void cse_pass(PassProgram& p);       // equal op, attributes and input slots: one step computes it (never random ops)
void dce_pass(PassProgram& p);       // drops steps no target needs
// conv2d followed by a chain of elementwise steps (relu, add / subtract / multiply / maximum /
// minimum with a scalar, a per-channel vector or a same-shape tensor) that only the chain reads:
// one step, the convolution writing through an epilogue (graph/fuse_epilogue.cc).  float32 and
// float64; the same bits as the unfused steps.
void conv_epilogue_pass(PassProgram& p);
// matmul (both operands of ndim >= 2) followed by such a chain (per-column operands: a bias over
// the last axis): one step, the GEMM storing through the epilogue (ops/gemm_ext.h's matmul_fused).
void matmul_epilogue_pass(PassProgram& p);
// Channel-blocked layout around chains of convolutions (graph/layout_pass.cc, ops/conv_blocked.h):
// a float32 convolution's output is stored as [N, ceil(C/16), H, W, 16] when every reader is a
// convolution with a blocked kernel (as its input, or as a same-shape operand of an epilogue whose
// output is blocked too); the chain's first convolution reads NCHW, its last writes NCHW.
void layout_pass(PassProgram& p);
void run_passes(PassProgram& p, uint32_t enabled);

// Records that the plan relies on node `node`'s attributes as they are now (a Guard).
void guard_attrs(PassProgram& p, int node);

// Whether a cached plan's guards hold for this evaluation's nodes and leaves.
bool guards_hold(const std::vector<Guard>& guards, const std::vector<Attrs>& attrs, const std::vector<Node*>& order,
                 const std::vector<VarImpl*>& leaves);

// Attributes equal value for value (floats compared bit for bit: 0.0 and -0.0 differ).
bool attrs_equal(const Attrs& a, const Attrs& b);

// What the passes did for the last plan evaluated on this thread.
PassCounts last_plan_passes();

}  // namespace mnn
