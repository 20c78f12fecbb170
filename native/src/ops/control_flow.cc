// If and Loop: control flow with graph bodies (ops.def).  Shape rules infer
// through the bodies; kernels run a body as one planned native call per
// branch or iteration (graph/graph_def.cc: run_graph_tensors).
#include <cstring>
#include <memory>

#include "graph/graph_def.h"
#include "ops/common.h"

namespace mnn {

namespace {

using Infos = std::vector<TensorInfo>;

bool truth(const Tensor& t, const char* op) {
    MNN_CHECK_VALUE(t.numel() == 1, op, ": the condition must have one element, got shape ", shape_str(t.shape()));
    if (is_half(t.dtype())) return (*t.data<uint16_t>() & 0x7fff) != 0;  // not +-0 (NaN is true, as in numpy)
    bool r = false;
    MNN_DISPATCH_COMPUTE(t.dtype(), op, r = t.data<scalar_t>()[0] != scalar_t(0));
    return r;
}

void check_condition(const TensorInfo& c, const char* op) {
    MNN_CHECK_VALUE(c.numel() == 1, op, ": the condition must have one element, got ", info_str(c));
}

Infos if_infer(const Attrs& a, const Infos& in) {
    MNN_CHECK_VALUE(!in.empty(), "if: expected a condition input");
    check_condition(in[0], "if");
    Infos ops(in.begin() + 1, in.end());
    Infos t = infer_graph(a.graph("then_graph"), ops, "if (then branch)");
    Infos e = infer_graph(a.graph("else_graph"), ops, "if (else branch)");
    MNN_CHECK_VALUE(t.size() == e.size(), "if: the branches give ", t.size(), " and ", e.size(), " outputs");
    for (size_t i = 0; i < t.size(); ++i)
        MNN_CHECK_VALUE(t[i] == e[i], "if: output ", i, " is ", info_str(t[i]), " in the then branch but ", info_str(e[i]),
                        " in the else branch");
    return t;
}

void copy_into(Tensor& dst, const Tensor& src, int64_t byte_offset = 0) {
    if (src.nbytes()) std::memcpy(static_cast<char*>(dst.raw()) + byte_offset, src.raw(), src.nbytes());
}

void if_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    const GraphDef& g = truth(in[0], "if") ? a.graph("then_graph") : a.graph("else_graph");
    std::vector<Tensor> r = run_graph_tensors(g, std::vector<Tensor>(in.begin() + 1, in.end()));
    for (size_t i = 0; i < out.size(); ++i) copy_into(out[i], r[i]);
}

// The body's infos for iteration inputs (i, carried...): checks that it keeps the carried
// values' dtypes and shapes; returns its outputs.
Infos loop_body_infos(const Attrs& a, const Infos& carried) {
    Infos ins{TensorInfo{DType::Int64, {}}};
    ins.insert(ins.end(), carried.begin(), carried.end());
    Infos out = infer_graph(a.graph("body"), ins, "loop (body)");
    MNN_CHECK_VALUE(out.size() >= 1 + carried.size(), "loop: the body gives ", out.size(), " outputs; expected the "
                    "condition and ", carried.size(), " carried values first");
    check_condition(out[0], "loop (body condition)");
    for (size_t i = 0; i < carried.size(); ++i)
        MNN_CHECK_VALUE(out[1 + i] == carried[i], "loop: carried value ", i, " enters the body as ", info_str(carried[i]),
                        " and leaves it as ", info_str(out[1 + i]), " (a loop must keep its carried dtypes and shapes)");
    return out;
}

Infos loop_infer(const Attrs& a, const Infos& in) {
    MNN_CHECK_VALUE(!in.empty(), "loop: expected a condition input");
    check_condition(in[0], "loop");
    int64_t trip = a.i("trip_count");
    MNN_CHECK_VALUE(trip >= -1, "loop: trip_count must be >= 0 or -1 (no limit), got ", trip);
    Infos carried(in.begin() + 1, in.end());
    Infos body = loop_body_infos(a, carried);
    Infos out = carried;
    size_t n_scan = body.size() - 1 - carried.size();
    MNN_CHECK_VALUE(n_scan == 0 || trip >= 0, "loop: per-iteration outputs need a trip_count (their length)");
    for (size_t k = 0; k < n_scan; ++k) {
        TensorInfo s = body[1 + carried.size() + k];
        s.shape.insert(s.shape.begin(), trip);
        check_shape(s.shape, s.dtype, "loop");
        out.push_back(s);
    }
    return out;
}

void loop_kernel(const Attrs& a, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
    const GraphDef& body = a.graph("body");
    int64_t trip = a.i("trip_count");
    size_t n_carried = in.size() - 1, n_scan = out.size() - n_carried;
    std::vector<Tensor> step(in.size());  // (i, carried...)
    for (size_t k = 0; k < n_carried; ++k) step[1 + k] = in[1 + k];
    bool cond = truth(in[0], "loop");
    int64_t i = 0;
    std::unique_ptr<PreparedRun> prepared;  // the body, planned once for every iteration
    for (; cond && (trip < 0 || i < trip); ++i) {
        Tensor it(DType::Int64, {});
        *it.data<int64_t>() = i;
        step[0] = it;
        if (!prepared) {
            std::vector<VarPtr> ins;
            for (const Tensor& t : step) ins.push_back(make_const(t));
            std::vector<VarPtr> outs;
            {
                LazyScope lazy(true);
                outs = run_graph(body, ins);
            }
            prepared = std::make_unique<PreparedRun>(std::move(outs), std::move(ins));
        }
        std::vector<Tensor> r = prepared->run(step);
        cond = truth(r[0], "loop (body condition)");
        for (size_t k = 0; k < n_carried; ++k) step[1 + k] = r[1 + k];
        for (size_t k = 0; k < n_scan; ++k) {
            const Tensor& s = r[1 + n_carried + k];
            copy_into(out[n_carried + k], s, i * int64_t(s.nbytes()));
        }
    }
    MNN_CHECK_VALUE(n_scan == 0 || i == trip, "loop: the condition ended the loop after ", i, " of ", trip,
                    " iterations; per-iteration outputs need all of them");
    for (size_t k = 0; k < n_carried; ++k) copy_into(out[k], step[1 + k]);
}

}  // namespace

void register_control_flow_ops() {
    // half_native: bodies see their inputs as they are (no float32 widening around them).
    register_op(OpType::If, if_infer, if_kernel, /*half_native=*/true);
    register_op(OpType::Loop, loop_infer, loop_kernel, /*half_native=*/true);
}

}  // namespace mnn
