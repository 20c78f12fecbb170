"""Load-time folding of BatchNormalization into the Conv before it (onnx_import._fold_conv_batch_norm),
checked against onnxruntime on hand-built graphs: what folds and what must not."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from mnn_nn.deploy import load_onnx  # noqa: E402


def _model(opset: int = 17):
    rng = np.random.default_rng(0)
    inits = []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def bn_stats(p, c):
        return [init(f"{p}_g", rng.uniform(0.5, 1.5, c)), init(f"{p}_b", rng.uniform(-0.5, 0.5, c)),
                init(f"{p}_m", rng.uniform(-0.5, 0.5, c)), init(f"{p}_v", rng.uniform(0.5, 1.5, c))]

    nodes = [
        # folds: conv with bias -> BN -> relu
        helper.make_node("Conv", ["x", init("w1", rng.standard_normal((8, 3, 3, 3))),
                                  init("b1", rng.standard_normal(8))], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1"] + bn_stats("bn1", 8), ["n1"], epsilon=1e-3),
        helper.make_node("Relu", ["n1"], ["r1"]),
        # folds: grouped conv without bias
        helper.make_node("Conv", ["r1", init("w2", rng.standard_normal((8, 1, 3, 3)))], ["c2"], group=8,
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2"] + bn_stats("bn2", 8), ["n2"]),
        # no fold: the conv's output has a second reader
        helper.make_node("Conv", ["n2", init("w3", rng.standard_normal((4, 8, 1, 1)))], ["c3"]),
        helper.make_node("BatchNormalization", ["c3"] + bn_stats("bn3", 4), ["n3"]),
        helper.make_node("Add", ["n3", "c3"], ["s3"]),
        # no fold: BN after something that is not a conv
        helper.make_node("BatchNormalization", ["s3"] + bn_stats("bn4", 4), ["y"]),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 10, 9])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4, 10, 9])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [9, 15, 17])
def test_batch_norm_folds_into_conv_and_matches_onnxruntime(opset):
    proto = _model(opset)
    model = load_onnx(proto)
    assert model.folded_batch_norms == 2
    x = np.random.default_rng(1).standard_normal((2, 3, 10, 9)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(model(x).read(), want, rtol=1e-4, atol=1e-4)
    assert [n.op_type for n in proto.graph.node].count("BatchNormalization") == 4  # the caller's proto is untouched
