"""ONNX import (mnn_nn.deploy.onnx_import): outputs against onnxruntime and the ONNX node suite.

- torch-exported ResNet-18, MobileNetV2, a TransformerEncoder and a bidirectional LSTM
  (random weights, exported at test time) match onnxruntime on the same file, on a
  dynamic batch axis, eagerly, lazily and compiled;
- ONNX's backend node conformance cases (built in memory from the ``onnx`` package's
  case generators) run for every op we claim; the test prints a per-op pass table and
  fails when the pass rate drops below what was measured;
- small hand-built graphs check control flow, shape chains under compile, metadata and
  the errors for unsupported ops.
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict

import numpy as np
import pytest

import mnn_expr as F

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from mnn_nn.deploy.onnx_import import (  # noqa: E402
    SUPPORTED_OPS,
    OnnxModel,
    load_onnx,
    unsupported_ops,
)


def _ort(model_or_path, feeds: dict) -> list:
    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _close(ours, ref, rtol: float = 1e-4) -> float:
    """Asserts ``ours`` (a Var) matches ``ref``: rtol, with atol relative to the largest reference value."""
    got = ours.read() if hasattr(ours, "read") else np.asarray(ours)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = float(np.abs(ref).max()) if ref.size else 1.0
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * max(scale, 1e-6))
    return float(np.abs(got - ref).max()) if ref.size else 0.0


def _model(nodes, inputs, outputs, inits=(), opset: int = 17):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name: str, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


# ---- torch-exported models ------------------------------------------------------------------------


def _torch_models():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    class ResNet18(nn.Module):
        def __init__(self, classes: int = 10) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                      nn.MaxPool2d(3, 2, 1))
            blocks, cin = [], 64
            for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
                blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
                cin = cout
            self.layers = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, classes)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            h = cin * expand
            layers = [] if expand == 1 else [nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6()]
            layers += [nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                       nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self, classes: int = 10) -> None:
            super().__init__()
            cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                   (6, 320, 1, 1)]
            feats = [nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())]
            cin = 32
            for t, c, n, s in cfg:
                for i in range(n):
                    feats.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            feats.append(nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()))
            self.features = nn.Sequential(*feats)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

        def forward(self, x):
            x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
            return self.classifier(torch.flatten(x, 1))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
            self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

        def forward(self, x):
            return self.enc(x)

    class LSTMHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
            self.fc = nn.Linear(32, 5)

        def forward(self, x):
            y, _ = self.lstm(x)
            return self.fc(y)

    def randomized(m):
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for mod in m.modules():
                if isinstance(mod, nn.BatchNorm2d):  # non-trivial statistics, so folding them is tested
                    mod.running_mean.uniform_(-0.5, 0.5, generator=g)
                    mod.running_var.uniform_(0.5, 1.5, generator=g)
                    mod.weight.uniform_(0.5, 1.5, generator=g)
                    mod.bias.uniform_(-0.5, 0.5, generator=g)
        return m.eval()

    torch.manual_seed(0)
    # name: (module, input shape, dynamic axes, extra shapes run on the same file)
    return torch, {
        "resnet18": (lambda: randomized(ResNet18()), (1, 3, 64, 64), {0: "N", 2: "H", 3: "W"},
                     [(3, 3, 64, 64), (1, 3, 224, 224)]),
        "mobilenetv2": (lambda: randomized(MobileNetV2()), (1, 3, 64, 64), {0: "N"}, [(3, 3, 64, 64)]),
        # The legacy exporter bakes the sequence length into the encoder's attention reshapes.
        "transformer_encoder": (lambda: Encoder().eval(), (1, 10, 32), {0: "N"}, [(3, 10, 32)]),
        "lstm": (lambda: LSTMHead().eval(), (1, 6, 8), {0: "N", 1: "T"}, [(3, 9, 8)]),
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> path of each torch model exported with the legacy (TorchScript) exporter at opset 17."""
    torch, specs = _torch_models()
    out = {}
    root = tmp_path_factory.mktemp("onnx_models")
    for name, (make, shape, dyn, extra) in specs.items():
        path = str(root / f"{name}.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(make(), (torch.zeros(shape),), path, dynamo=False, opset_version=17,
                              input_names=["x"], output_names=["y"], dynamic_axes={"x": dyn, "y": dyn})
        out[name] = (path, shape, extra)
    return out


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "transformer_encoder", "lstm"])
def test_torch_model_matches_onnxruntime(exported, name, capsys):
    path, shape, extra = exported[name]
    model = load_onnx(path)
    assert model.input_names == ["x"] and model.output_names == ["y"]
    assert model.input_shapes[0][0] is None  # the dynamic batch axis
    rng = np.random.default_rng(0)
    lines = []
    for s in [shape] + extra:
        x = rng.standard_normal(s).astype(np.float32)
        (ref,) = _ort(path, {"x": x})
        t = time.perf_counter()
        y = model(x)
        y.read()
        dt = time.perf_counter() - t
        diff = _close(y, ref)
        lines.append(f"{name} {s}: max|ours - onnxruntime| = {diff:.3g} (max|ref| {np.abs(ref).max():.3g}, "
                     f"{dt * 1e3:.1f} ms)")
    with capsys.disabled():
        print("\n" + "\n".join(lines))


@pytest.mark.parametrize("name", ["resnet18", "transformer_encoder", "lstm"])
def test_torch_model_lazy_and_compiled(exported, name):
    path, shape, extra = exported[name]
    model = load_onnx(path)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(extra[0]).astype(np.float32)
    (ref,) = _ort(path, {"x": x})
    with F.lazy_eval(True):
        y = model(x)
        _close(y, ref)
    f = F.compile(lambda v: model(v))
    for _ in range(2):  # trace, then the cached program
        _close(f(F.asarray(x)), ref)
    x2 = rng.standard_normal(shape).astype(np.float32)  # another batch size: a new trace
    _close(f(F.asarray(x2)), _ort(path, {"x": x2})[0])
    assert f.traces == 2


# ---- hand-built graphs --------------------------------------------------------------------------------


def _shape_chain_model():
    """y = reshape(x, [shape(x)[0], -1]) @ w: a Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain."""
    w = numpy_helper.from_array(np.random.default_rng(2).standard_normal((12, 5)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["y"]),
    ]
    inits = [w, numpy_helper.from_array(np.array([0], np.int64), "ax"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    return _model(nodes, [_vi("x", ["N", 3, 4])], [_vi("y", ["N", 5])], inits)


def test_shape_chain_folds_under_compile():
    m = _shape_chain_model()
    model = load_onnx(m)
    f = F.compile(lambda v: model(v))
    for n in (1, 4, 2):
        x = np.random.default_rng(n).standard_normal((n, 3, 4)).astype(np.float32)
        ref = _ort(m, {"x": x})[0]
        _close(model(x), ref)
        _close(f(F.asarray(x)), ref)  # would fail if the chain read a traced tensor
        with F.lazy_eval(True):
            _close(model(x), ref)


def _if_model():
    """y = x * 2 if sum(x) > 0 else x - 1 (the condition depends on the input)."""
    then_g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t"])], "then", [], [_vi("t", [3])])
    else_g = helper.make_graph([helper.make_node("Sub", ["x", "one"], ["e"])], "else", [], [_vi("e", [3])])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in
             [("two", 2.0), ("one", 1.0), ("zero", 0.0)]]
    return _model(nodes, [_vi("x", [3])], [_vi("y", [3])], inits)


@pytest.mark.parametrize("mode", ["eager", "lazy", "compile"])
def test_if_on_a_computed_condition(mode):
    m = _if_model()
    model = load_onnx(m)
    f = F.compile(lambda v: model(v))
    for x in (np.array([1.0, 2.0, -0.5], np.float32), np.array([-1.0, 0.5, -3.0], np.float32)):
        ref = _ort(m, {"x": x})[0]
        if mode == "eager":
            y = model(x)
        elif mode == "lazy":
            with F.lazy_eval(True):
                y = model(x)
                y.read()
        else:
            y = f(F.asarray(x))  # traced once: both branches and a where
        _close(y, ref)


def test_loop_with_trip_count_and_scan_output():
    """Loop: carried running sum of x, scan output of each partial sum, trip count from an input."""
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "x"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["acc_out"], ["partial"])],
        "body", [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL), _vi("acc_in", [2])],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("acc_out", [2]), _vi("partial", [2])])
    nodes = [helper.make_node("Loop", ["m", "cond", "init"], ["acc", "parts"], body=body)]
    inits = [numpy_helper.from_array(np.array(True), "cond"),
             numpy_helper.from_array(np.zeros(2, np.float32), "init")]
    m = _model(nodes, [_vi("m", [], TensorProto.INT64), _vi("x", [2])],
               [_vi("acc", [2]), _vi("parts", [None, 2])], inits)
    model = load_onnx(m)
    x = np.array([1.5, -2.0], np.float32)
    for trips in (1, 4):
        refs = _ort(m, {"m": np.array(trips, np.int64), "x": x})
        outs = model(np.array(trips, np.int64), x)
        for o, r in zip(outs, refs):
            _close(o, r)


def test_metadata_named_inputs_and_repr():
    m = _model([helper.make_node("Add", ["a", "b"], ["c"])],
               [_vi("a", ["N", 3]), _vi("b", [1, 3], TensorProto.FLOAT)], [_vi("c", ["N", 3])])
    model = load_onnx(m.SerializeToString())
    assert isinstance(model, OnnxModel)
    assert model.input_names == ["a", "b"] and model.output_names == ["c"]
    assert model.input_shapes == [(None, 3), (1, 3)] and model.output_shapes == [(None, 3)]
    assert model.input_dtypes == ["float32", "float32"] and model.opset == 17
    a, b = np.ones((2, 3), np.float32), np.arange(3, dtype=np.float32).reshape(1, 3)
    np.testing.assert_array_equal(model(b=b, a=a).read(), a + b)
    np.testing.assert_array_equal(model(F.asarray(a), b).read(), a + b)
    assert "Add" not in repr(model) and "inputs a" in repr(model)
    with pytest.raises(TypeError, match="missing inputs"):
        model(a)
    with pytest.raises(TypeError, match="no input named"):
        model(a, b, c=a)
    with pytest.raises(ValueError, match="expected 2 dims"):
        model(np.ones(3, np.float32), b)


def test_unsupported_op_is_named():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
             helper.make_node("Bernoulli", ["r"], ["y"], name="coin")]
    m = _model(nodes, [_vi("x", [2])], [_vi("y", [2])], opset=17)
    assert unsupported_ops(m) == [("Bernoulli", "coin")]
    with pytest.raises(NotImplementedError, match=r"Bernoulli \(node 'coin'\)"):
        load_onnx(m)
    model = load_onnx(m, strict=False)
    assert model.unsupported_ops() == [("Bernoulli", "coin")]
    with pytest.raises(NotImplementedError, match="Bernoulli node 'coin'"):
        model(np.ones(2, np.float32))
    assert "Relu" in SUPPORTED_OPS and "Bernoulli" not in SUPPORTED_OPS


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_onnx(str(tmp_path / "missing.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        load_onnx(str(bad))
    bad_graph = _model([helper.make_node("Relu", ["nope"], ["y"])], [_vi("x", [2])], [_vi("y", [2])])
    with pytest.raises(ValueError, match="not valid ONNX"):
        load_onnx(bad_graph)


def test_initialiser_only_nodes_fold_at_load():
    """A weight transpose that depends only on initialisers runs once, at load time."""
    w = numpy_helper.from_array(np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32), "w")
    nodes = [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
             helper.make_node("MatMul", ["x", "wt"], ["y"])]
    m = _model(nodes, [_vi("x", [2, 4])], [_vi("y", [2, 5])], [w])
    model = load_onnx(m)
    assert model._graph.skip == {0}
    x = np.ones((2, 4), np.float32)
    _close(model(x), _ort(m, {"x": x})[0])


def _random_layer_case(rng):
    """A random Conv / ConvTranspose / pooling node (1-d to 3-d) with its input, within the spec's
    unambiguous ground (onnxruntime departs from it for dilated SAME pooling and for ConvTranspose
    SAME when the kernel is smaller than the stride)."""
    op = str(rng.choice(["Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"]))
    sd = int(rng.choice([1, 2, 2, 3]))
    shape = [int(rng.integers(1, 3)), int(rng.integers(1, 4))] + [int(rng.integers(4, 9)) for _ in range(sd)]
    k = [int(rng.integers(1, 4)) for _ in range(sd)]
    attrs = {"strides": [int(rng.integers(1, 3)) for _ in range(sd)]}
    if rng.random() < 0.5:
        attrs["dilations"] = [int(rng.integers(1, 3)) for _ in range(sd)]
    if rng.random() < 0.3 and op != "ConvTranspose" and "dilations" not in attrs:
        attrs["auto_pad"] = str(rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    else:
        attrs["pads"] = [int(rng.integers(0, kk)) for kk in k + k]
    inits, ins = [], ["x"]
    if op in ("Conv", "ConvTranspose"):
        g = int(rng.choice([1, shape[1]]))
        cout = g * int(rng.integers(1, 3))
        wshape = [cout, shape[1] // g] + k if op == "Conv" else [shape[1], cout // g] + k
        inits.append(numpy_helper.from_array(rng.standard_normal(wshape).astype(np.float32), "w"))
        ins.append("w")
        if rng.random() < 0.5:
            inits.append(numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), "b"))
            ins.append("b")
        attrs["group"] = g
    else:
        attrs["kernel_shape"] = k
        if "auto_pad" not in attrs and rng.random() < 0.4:
            attrs["ceil_mode"] = 1
        if op == "AveragePool":
            attrs["count_include_pad"] = int(rng.integers(0, 2))
        if op == "LpPool":
            attrs["p"] = int(rng.choice([1, 2, 3]))
    node = helper.make_node(op, ins, ["y"], **attrs)
    m = _model([node], [_vi("x", shape)], [_vi("y", None)], inits, opset=19)
    return m, rng.standard_normal(shape).astype(np.float32), f"{op} {shape} {attrs}"


def _random_resize_case(rng):
    """A random 4-d Resize (integer output widths for align_corners and tf_crop_and_resize, where
    onnxruntime and ONNX's reference differ for fractional ones)."""
    shape = [1, int(rng.integers(1, 3)), int(rng.integers(2, 7)), int(rng.integers(2, 7))]
    mode = str(rng.choice(["nearest", "linear", "cubic"]))
    coord = str(rng.choice(["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                            "half_pixel_symmetric", "tf_crop_and_resize"]))
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if mode == "nearest":
        attrs["nearest_mode"] = str(rng.choice(["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]))
    else:
        attrs["antialias"] = int(rng.random() < 0.3)
    if mode == "cubic":
        attrs["cubic_coeff_a"] = float(rng.choice([-0.75, -0.5]))
        attrs["exclude_outside"] = int(rng.integers(0, 2))
    roi = np.array([], np.float32)
    if coord == "tf_crop_and_resize":
        roi = np.array([0, 0, *rng.uniform(0, 0.4, 2), 1, 1, *rng.uniform(0.6, 1.2, 2)], np.float32)
        attrs["extrapolation_value"] = 10.0
    inits = [numpy_helper.from_array(roi, "roi")]
    if coord in ("align_corners", "tf_crop_and_resize") or rng.random() < 0.5:
        sizes = np.array(shape[:2] + [int(rng.integers(1, 12)), int(rng.integers(1, 12))], np.int64)
        inits.append(numpy_helper.from_array(sizes, "sizes"))
        ins = ["x", "roi", "", "sizes"]
    else:
        scales = np.array([1, 1, rng.choice([0.5, 0.6, 0.75, 1.5, 2.0, 3.0]), rng.choice([0.5, 0.8, 1.0, 1.7])],
                          np.float32)
        inits.append(numpy_helper.from_array(scales, "scales"))
        ins = ["x", "roi", "scales"]
    m = _model([helper.make_node("Resize", ins, ["y"], **attrs)], [_vi("x", shape)], [_vi("y", None)], inits,
               opset=19)
    return m, rng.standard_normal(shape).astype(np.float32), f"Resize {shape} {attrs} {ins}"


@pytest.mark.parametrize("kind", ["layers", "resize"])
def test_random_configurations_match_onnxruntime(kind):
    """Random layer / Resize configurations against onnxruntime; tf_crop_and_resize against ONNX's
    reference evaluator (onnxruntime's crop coordinates differ from it when both axes are cropped)."""
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(7 if kind == "layers" else 8)
    make = _random_layer_case if kind == "layers" else _random_resize_case
    for _ in range(60):
        m, x, label = make(rng)
        try:
            if "tf_crop_and_resize" in label:
                (ref,) = ReferenceEvaluator(m).run(None, {"x": x})
            else:
                (ref,) = _ort(m, {"x": x})
        except Exception:  # noqa: BLE001  (a configuration onnxruntime rejects, e.g. a window larger than the input)
            continue
        y = load_onnx(m, strict=False)(x)  # (outputs without a declared shape fail onnx.checker)
        try:
            _close(y, ref)
        except AssertionError as e:
            raise AssertionError(f"{label}: {e}") from None


# ---- the ONNX backend node suite ---------------------------------------------------------------------

_OUR_TYPES = {1, 2, 3, 6, 7, 9, 10, 11, 16}  # TensorProto element types mnnpy stores
# Measured with onnx 1.23 (see the printed report); the test fails when a change drops below them.
MIN_PASS_RATE = 0.82  # of every case of a claimed op (unsupported dtypes and modes included)
MIN_SUPPORTED_PASS_RATE = 0.99  # of the cases whose dtypes and modes we support
MIN_EXPANDED_PASS_RATE = 0.97  # of the function-expanded graphs built only of claimed ops


def _elem_types(t, out: set) -> None:
    """Element types of a TypeProto (inside sequences and optionals too); -1 for maps and the like."""
    if t.HasField("tensor_type"):
        out.add(t.tensor_type.elem_type)
    elif t.HasField("sequence_type"):
        _elem_types(t.sequence_type.elem_type, out)
    elif t.HasField("optional_type"):
        _elem_types(t.optional_type.elem_type, out)
    else:
        out.add(-1)


def _graph_types(g, out: set) -> None:
    for vi in list(g.input) + list(g.output):
        _elem_types(vi.type, out)
    for node in g.node:
        for a in node.attribute:
            if node.op_type in ("Cast", "CastLike", "EyeLike", "SequenceEmpty") and a.name in ("to", "dtype"):
                out.add(a.i)
            if a.type == a.TENSOR:
                out.add(a.t.data_type)
            if a.type == a.GRAPH:
                _graph_types(a.g, out)
    for t in g.initializer:
        out.add(t.data_type)


def _unsupported_mode(tc) -> str | None:
    """Why a case lies outside what mnnpy supports (None when it should pass)."""
    types: set = set()
    _graph_types(tc.model.graph, types)
    if -1 in types:
        return "map / sparse values"
    bad = sorted(t for t in types - _OUR_TYPES if t > 0)
    if bad:
        names = ", ".join(TensorProto.DataType.Name(t).lower() for t in bad)
        return f"dtype {names}"
    node = tc.model.graph.node[0]
    if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
        return "random (training-mode dropout)"
    return None


def _as_array(v):
    return numpy_helper.to_array(v) if isinstance(v, TensorProto) else np.asarray(v)


def _as_input(v):
    if isinstance(v, list):
        return [_as_array(e) for e in v]
    return None if v is None else _as_array(v)


def _check_output(i, o, e) -> None:
    if isinstance(e, list):
        assert isinstance(o, list) and len(o) == len(e), f"output {i}: expected a sequence of {len(e)}, got {o!r}"
        for j, (oo, ee) in enumerate(zip(o, e)):
            _check_output(f"{i}[{j}]", oo, ee)
        return
    if e is None:
        assert o is None, f"output {i}: expected an empty optional"
        return
    e = _as_array(e)
    got = o.read()
    if e.dtype.name == "bfloat16":
        assert o.dtype.name == "bfloat16", f"output {i}: dtype {o.dtype}, expected bfloat16"
        e, rtol, atol = e.astype(np.float32), 1.6e-2, 1.6e-2  # 2 bfloat16 ulps
    elif e.dtype == np.float16:
        rtol, atol = 2e-3, 2e-3  # 2 float16 ulps
    else:
        rtol, atol = 1e-3, 1e-5
    assert got.dtype == e.dtype, f"output {i}: dtype {got.dtype}, expected {e.dtype}"
    assert got.shape == e.shape, f"output {i}: shape {got.shape}, expected {e.shape}"
    if e.dtype.kind == "f":
        np.testing.assert_allclose(got, e, rtol=rtol, atol=atol, err_msg=f"output {i}")
    else:
        np.testing.assert_array_equal(got, e, err_msg=f"output {i}")


def _run_case(tc) -> None:
    inputs, expected = tc.data_sets[0]
    model = load_onnx(tc.model)
    outs = model(*[_as_input(v) for v in inputs])
    outs = outs if len(model.output_names) > 1 else [outs]
    assert len(outs) >= len(expected), f"{len(outs)} outputs, expected {len(expected)}"
    for i, (o, e) in enumerate(zip(outs, expected)):
        _check_output(i, o, e)


@pytest.fixture(scope="module")
def node_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return collect_testcases()


def test_onnx_node_suite_report(node_cases, capsys):
    plain = {tc.name: tc for tc in node_cases if "_expanded" not in tc.name}
    op_of = {name: tc.model.graph.node[0].op_type for name, tc in plain.items() if len(tc.model.graph.node) == 1}
    per_op: dict = defaultdict(lambda: [0, 0, 0])  # passed, total, outside our modes
    failures, outside = [], []
    t0 = time.perf_counter()
    for name, tc in plain.items():
        op = op_of.get(name)
        if op not in SUPPORTED_OPS:
            continue
        row = per_op[op]
        row[1] += 1
        try:
            with np.errstate(all="ignore"):
                _run_case(tc)
            row[0] += 1
        except Exception as e:  # noqa: BLE001  (every failure is reported)
            why = _unsupported_mode(tc)
            if why is not None:
                row[2] += 1
                outside.append((op, name, why))
            else:
                failures.append((op, name, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"))
    # Function-expanded graphs (a claimed op spelled with other ops) whose ops we all claim.
    exp_pass, exp_total, exp_fail = 0, 0, []
    for tc in node_cases:
        if "_expanded" not in tc.name or unsupported_ops(tc.model) or _unsupported_mode(tc):
            continue
        exp_total += 1
        try:
            with np.errstate(all="ignore"):
                _run_case(tc)
            exp_pass += 1
        except Exception as e:  # noqa: BLE001
            exp_fail.append((tc.name, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"))
    elapsed = time.perf_counter() - t0

    passed = sum(r[0] for r in per_op.values())
    total = sum(r[1] for r in per_op.values())
    n_outside = sum(r[2] for r in per_op.values())
    rate = passed / total
    supported_rate = passed / max(total - n_outside, 1)
    exp_rate = exp_pass / max(exp_total, 1)
    lines = ["", f"ONNX node suite (onnx {onnx.__version__}): {len(per_op)} claimed op types with cases, "
                 f"{len(SUPPORTED_OPS)} claimed in all ({elapsed:.1f} s)",
             "op: passed/total (outside supported dtypes/modes)"]
    cells = [f"{op}: {r[0]}/{r[1]}" + (f" ({r[2]})" if r[2] else "") for op, r in sorted(per_op.items())]
    for i in range(0, len(cells), 5):
        lines.append("  " + "".join(f"{c:<34}" for c in cells[i:i + 5]).rstrip())
    lines.append(f"overall: {passed}/{total} = {rate:.1%}; of supported dtypes/modes: "
                 f"{passed}/{total - n_outside} = {supported_rate:.1%}")
    lines.append(f"function-expanded graphs of claimed ops: {exp_pass}/{exp_total} = {exp_rate:.1%}")
    by_reason: dict = defaultdict(list)
    for _op, name, why in outside:
        by_reason[why].append(name)
    lines.append("outside supported dtypes/modes:")
    for why, names in sorted(by_reason.items()):
        lines.append(f"  {why}: {len(names)} ({', '.join(sorted(names)[:4])}{', ...' if len(names) > 4 else ''})")
    lines.append(f"failing cases ({len(failures)}):" if failures else "failing cases: none")
    lines += [f"  {op} {name}: {msg}" for op, name, msg in failures]
    lines += [f"  (expanded) {name}: {msg}" for name, msg in exp_fail]
    with capsys.disabled():
        print("\n".join(lines))
    assert rate >= MIN_PASS_RATE, f"node-suite pass rate {rate:.1%} < {MIN_PASS_RATE:.0%}"
    assert supported_rate >= MIN_SUPPORTED_PASS_RATE, \
        f"pass rate over supported dtypes/modes {supported_rate:.1%} < {MIN_SUPPORTED_PASS_RATE:.0%}"
    assert exp_rate >= MIN_EXPANDED_PASS_RATE, f"expanded-graph pass rate {exp_rate:.1%} < {MIN_EXPANDED_PASS_RATE:.0%}"
