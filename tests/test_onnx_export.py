"""ONNX export (mnn_nn.deploy.onnx_export): every primitive and a few models, checked against onnxruntime.

Each case exports a function or Module, runs the model in onnxruntime on the same inputs and
compares with our eager result.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import mnn_expr as F  # noqa: E402
import mnn_nn as nn  # noqa: E402
from mnn_expr._core import apply1  # noqa: E402
from mnn_nn.deploy.graph import SLICE_TO_END, Graph, Node  # noqa: E402
from mnn_nn.deploy.onnx_export import ONNX_OPS, export_onnx, graph_to_onnx  # noqa: E402

RNG = np.random.default_rng(0)
TOL = dict(rtol=1e-5, atol=1e-6)
MAX_DIFF: dict = {}  # case -> (max abs, max relative) difference seen (printed by test_report with -s)
_OPTS = ort.SessionOptions()
_OPTS.intra_op_num_threads = 1
_OPTS.inter_op_num_threads = 1
_OPTS.log_severity_level = 3


def rand(*shape, dtype="float32", lo=-3.0, hi=3.0):
    return RNG.uniform(lo, hi, shape).astype(dtype)


def rint(*shape, dtype="int32", lo=-9, hi=10):
    return RNG.integers(lo, hi, shape).astype(dtype)


def session(model):
    return ort.InferenceSession(model.SerializeToString(), _OPTS, providers=["CPUExecutionProvider"])


def run_ort(model, inputs):
    sess = session(model)
    return sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), inputs)})


def eager(fn, inputs):
    out = fn(*[F.asarray(x) for x in inputs])
    outs = list(out.values()) if isinstance(out, dict) else (list(out) if isinstance(out, (list, tuple)) else [out])
    return [np.asarray(o.read()) for o in outs]


def compare(case, got, want, tol=TOL):
    assert len(got) == len(want), case
    worst, worst_rel = 0.0, 0.0
    for g, w in zip(got, want):
        assert g.shape == w.shape, f"{case}: shape {g.shape} vs {w.shape}"
        assert g.dtype == w.dtype, f"{case}: dtype {g.dtype} vs {w.dtype}"
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, equal_nan=True, err_msg=case, **tol)
            fin = np.isfinite(w) & np.isfinite(g)
            if fin.any():
                d = np.abs(g[fin].astype(np.float64) - w[fin])
                worst = max(worst, float(d.max()))
                big = np.abs(w[fin]) > 1e-6
                if big.any():
                    worst_rel = max(worst_rel, float((d[big] / np.abs(w[fin][big])).max()))
        else:
            np.testing.assert_array_equal(g, w, err_msg=case)
    old = MAX_DIFF.get(case, (0.0, 0.0))
    MAX_DIFF[case] = (max(old[0], worst), max(old[1], worst_rel))


def check(case, fn, inputs, tol=TOL, **kw):
    """Exports fn, runs it in onnxruntime and compares with our eager result; returns the model."""
    model = export_onnx(fn, [F.asarray(x) for x in inputs], **kw)
    compare(case, run_ort(model, inputs), eager(fn, inputs), tol)
    return model


def prim(op, **attrs):
    """A function applying primitive ``op`` (so the exact primitive is exported)."""
    return lambda *xs: apply1(op, list(xs), **attrs)


# --------------------------------------------------------------------------- elementwise

SPECIAL = np.array([0.0, -0.0, 1e-7, -1e-7, 1e-3, -1e-3, 0.5, -0.5, 1.5, -2.5, 10.0, -10.0, 30.0, -30.0,
                    np.inf, -np.inf, np.nan], np.float32)

UNARY_FLOAT = {  # op -> input values
    "negative": rand(3, 4), "abs": rand(3, 4), "sign": np.concatenate([rand(8), SPECIAL]),
    "floor": rand(3, 4), "ceil": rand(3, 4), "round": np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.4, -2.6], np.float32),
    "trunc": np.concatenate([rand(8), SPECIAL]), "sqrt": rand(3, 4, lo=0, hi=9), "rsqrt": rand(3, 4, lo=0.1, hi=9),
    "cbrt": np.concatenate([rand(8, lo=-30, hi=30), [8.0, -27.0, 0.0]]).astype(np.float32), "square": rand(3, 4),
    "reciprocal": rand(3, 4, lo=0.5, hi=4), "exp": rand(3, 4), "exp2": rand(3, 4),
    "expm1": np.concatenate([rand(8), SPECIAL, [1e-20, -1e-12, 88.0, -88.0, 89.0]]).astype(np.float32),
    "log": rand(3, 4, lo=0.01, hi=9), "log2": rand(3, 4, lo=0.01, hi=9), "log10": rand(3, 4, lo=0.01, hi=9),
    "log1p": np.concatenate([rand(8, lo=-0.99, hi=5), [0.0, -0.0, 1e-7, -1e-7, 1e-12, -1.0, 1e30, np.inf, np.nan,
                                                      3e38]]).astype(np.float32),
    "sin": rand(3, 4), "cos": rand(3, 4), "tan": rand(3, 4, lo=-1.4, hi=1.4), "arcsin": rand(3, 4, lo=-1, hi=1),
    "arccos": rand(3, 4, lo=-1, hi=1), "arctan": rand(3, 4), "sinh": rand(3, 4), "cosh": rand(3, 4),
    "tanh": rand(3, 4), "arcsinh": rand(3, 4), "arccosh": rand(3, 4, lo=1, hi=9),
    "arctanh": rand(3, 4, lo=-0.99, hi=0.99), "erf": rand(3, 4),
    "erfc": np.concatenate([rand(8), np.linspace(-6, 9, 61), [np.inf, -np.inf, np.nan]]).astype(np.float32),
    "erfinv": np.concatenate([rand(16, lo=-1, hi=1), [0.0, 0.5, -0.999, 0.99999, 1.0, -1.0, 1e-6]]).astype(np.float32),
    "sigmoid": rand(3, 4), "relu": rand(3, 4), "gelu": rand(3, 4), "gelu_tanh": rand(3, 4), "silu": rand(3, 4),
    "softplus": np.concatenate([rand(8), [-30.0, -90.0, 30.0, 90.0, 0.0, 1e-7]]).astype(np.float32),
    "softsign": rand(3, 4), "isnan": SPECIAL, "isinf": SPECIAL, "isfinite": SPECIAL, "logical_not": SPECIAL,
}
UNARY_TOL = {"erfc": dict(rtol=2e-6, atol=0), "erfinv": dict(rtol=2e-6, atol=1e-7), "cbrt": dict(rtol=2e-6, atol=0),
             "expm1": dict(rtol=2e-6, atol=0), "log1p": dict(rtol=2e-6, atol=0), "softplus": dict(rtol=2e-6, atol=0)}


@pytest.mark.parametrize("op", sorted(UNARY_FLOAT))
def test_unary_float(op):
    check(op, prim(op), [UNARY_FLOAT[op]], tol=UNARY_TOL.get(op, TOL))


@pytest.mark.parametrize("op,dtype", [("negative", "int32"), ("negative", "int64"), ("abs", "int32"), ("sign", "int64"),
                                      ("floor", "int32"), ("ceil", "int64"), ("round", "int32"), ("trunc", "int32"),
                                      ("square", "int64"), ("relu", "int32"), ("relu", "int64"),
                                      ("bitwise_not", "int32"), ("bitwise_not", "bool"), ("isnan", "int32"),
                                      ("isinf", "int64"), ("isfinite", "int32"), ("logical_not", "int32"),
                                      ("logical_not", "bool")])
def test_unary_int(op, dtype):
    x = rint(3, 5, dtype=dtype) if dtype != "bool" else RNG.random((3, 5)) > 0.5
    check(f"{op}[{dtype}]", prim(op), [x])


@pytest.mark.parametrize("op", ["expm1", "log1p", "gelu", "silu", "softplus", "rsqrt", "log2", "floor_divide", "mod",
                                "hypot", "arctan2", "squared_difference"])
def test_half_compositions_in_float32(op):
    """Composed mappings of float16 nodes compute in float32 and round once, as our kernels do."""
    x = rand(40, lo=0.1, hi=4).astype(np.float16)
    xs = [x, rand(40, lo=-3, hi=3).astype(np.float16)] if F.OP_TABLE[op].category == "binary" else [x]
    model = check(f"{op}[float16]", prim(op), xs, tol=dict(rtol=1e-3, atol=1e-4))
    assert any(n.op_type == "Cast" for n in model.graph.node)


@pytest.mark.parametrize("opset", [18, 20])
def test_unary_newer_opsets(opset):
    x = rand(4, 5)
    for op in ("gelu", "gelu_tanh"):
        model = check(f"{op}[opset{opset}]", prim(op), [x], opset=opset)
        if opset >= 20:
            assert [n.op_type for n in model.graph.node] == ["Gelu"]
    check(f"bitwise_not[int32, opset{opset}]", prim("bitwise_not"), [rint(6)], opset=opset)


BINARY_FLOAT = {
    "add": None, "subtract": None, "multiply": None, "divide": None, "power": (rand(3, 4, lo=0.1, hi=3), rand(4)),
    "maximum": None, "minimum": None, "arctan2": None, "hypot": None, "copysign": None, "squared_difference": None,
    "equal": None, "not_equal": None, "less": None, "less_equal": None, "greater": None, "greater_equal": None,
    "logical_and": None, "logical_or": None, "logical_xor": None, "floor_divide": None, "mod": None, "fmod": None,
}
_Z = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 3.0], np.float32)
EDGE_A, EDGE_B = np.repeat(_Z, 8), np.tile(_Z, 8)  # every pair of edge values


@pytest.mark.parametrize("op", sorted(BINARY_FLOAT))
def test_binary_float(op):
    a, b = BINARY_FLOAT[op] or (rand(3, 4), rand(4))  # broadcasting
    if op in ("equal", "not_equal", "less_equal", "greater_equal", "floor_divide", "mod", "fmod"):
        b = np.round(b)  # ties and exact multiples
    check(op, prim(op), [a, b])
    if op in ("arctan2", "copysign", "maximum", "minimum", "hypot", "floor_divide", "mod", "fmod"):
        check(f"{op}[edges]", prim(op), [EDGE_A, EDGE_B])
    if op in ("floor_divide", "mod"):  # NumPy's division rounding on awkward ratios
        x = np.array([1.0, -1.0, 7.5, -7.5, 1e-30, 5.0], np.float32)
        y = np.array([0.1, 0.1, -2.5, 2.5, 3.0, -0.3], np.float32)
        check(f"{op}[ratios]", prim(op), [x, y])


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "floor_divide", "mod", "fmod", "maximum", "minimum",
                                "power", "equal", "less", "greater_equal", "squared_difference", "left_shift",
                                "right_shift", "logical_and"])
def test_binary_int(op, dtype):
    a, b = rint(4, 6, dtype=dtype), rint(6, dtype=dtype)
    if op in ("floor_divide", "mod", "fmod"):
        a = np.concatenate([a.ravel(), [np.iinfo(dtype).min, 7, -7]]).astype(dtype)
        b = np.concatenate([b, b, b, b, [-1, 0, 0]]).astype(dtype)
    if op == "power":
        a, b = rint(4, 6, dtype=dtype, lo=-4, hi=5), rint(6, dtype=dtype, lo=0, hi=5)
    if op in ("left_shift", "right_shift"):
        a = rint(4, 6, dtype=dtype, lo=-1000, hi=1000)
        b = np.array([0, 1, 3, -1, 40, 70], dtype)
    check(f"{op}[{dtype}]", prim(op), [a, b])


def test_binary_uint8_and_bool():
    a = rint(10, dtype="uint8", lo=0, hi=255)
    for op in ("left_shift", "right_shift"):
        check(f"{op}[uint8]", prim(op), [a, np.array([0, 1, 2, 7, 8, 9, 3, 4, 5, 6], np.uint8)])
    p, q = RNG.random(12) > 0.5, RNG.random(12) > 0.5
    for op in ("add", "multiply", "maximum", "minimum", "equal", "less", "greater_equal", "logical_xor",
               "bitwise_and", "bitwise_or", "bitwise_xor"):
        check(f"{op}[bool]", prim(op), [p, q])


def test_bitwise_int_needs_opset18():
    a, b = rint(5), rint(5)
    with pytest.raises(NotImplementedError, match="bitwise_and.*opset >= 18"):
        export_onnx(prim("bitwise_and"), [F.asarray(a), F.asarray(b)])
    for op in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        check(f"{op}[int32, opset18]", prim(op), [a, b], opset=18)


def test_where_and_cast():
    c, a, b = RNG.random((3, 4)) > 0.5, rand(3, 4), rand(4)
    check("where", prim("where"), [c, a, b])
    x = np.concatenate([rand(10, lo=-200, hi=200), [0.0, -0.0, 0.5]]).astype(np.float32)
    for dt in ("int32", "int64", "int8", "float64", "float16", "bool"):
        tol = dict(rtol=1e-3, atol=0) if dt == "float16" else TOL
        check(f"cast[float32->{dt}]", prim("cast", dtype=dt), [x if dt != "int8" else x / 2], tol=tol)
    check("cast[int32->float32]", prim("cast", dtype="float32"), [rint(7)])
    check("cast[bool->int64]", prim("cast", dtype="int64"), [RNG.random(7) > 0.5])


# --------------------------------------------------------------------------- reductions and scans


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("op", ["reduce_sum", "reduce_mean", "reduce_prod", "reduce_max", "reduce_min",
                                "reduce_any", "reduce_all"])
def test_reductions(op, opset):
    x = rand(3, 4, 5, lo=0.5, hi=1.5)
    if op in ("reduce_any", "reduce_all"):
        x = (RNG.random((3, 4, 5)) > 0.2).astype(np.float32)
    for axes, keep in (((1,), False), ((0, 2), True), ((), False), ((-1,), True)):
        check(f"{op}[{axes},{keep},opset{opset}]", prim(op, axes=list(axes), keepdims=keep), [x], opset=opset)
    ints = rint(3, 4, dtype="int32", lo=-3, hi=4)
    check(f"{op}[int32,opset{opset}]", prim(op, axes=[1], keepdims=False), [ints], opset=opset)
    if op in ("reduce_sum", "reduce_max", "reduce_any", "reduce_all"):
        check(f"{op}[bool,opset{opset}]", prim(op, axes=[0], keepdims=False), [RNG.random((3, 4)) > 0.5], opset=opset)


def test_arg_and_cumulative():
    x = rand(3, 5, 4)
    for op in ("argmax", "argmin"):
        for axis, keep in ((1, False), (-1, True), (0, False)):
            check(f"{op}[{axis},{keep}]", prim(op, axis=axis, keepdims=keep), [x])
    for op in ("cumsum", "cumprod"):
        for axis in (0, 1, -1):
            for exc in (False, True):
                for rev in (False, True):
                    check(f"{op}[{axis},{exc},{rev}]", prim(op, axis=axis, exclusive=exc, reverse=rev),
                          [rand(3, 5, 4, lo=0.5, hi=1.5)])
        check(f"{op}[int32]", prim(op, axis=1), [rint(3, 5, lo=-3, hi=4)])


def test_cumprod_dynamic_axis():
    check("cumprod[dynamic]", prim("cumprod", axis=0), [rand(4, 3)], dynamic_axes={"input0": [0]})
    model = export_onnx(prim("cumprod", axis=0), [F.asarray(rand(4, 3))], dynamic_axes={"input0": [0]})
    x = rand(9, 3)
    compare("cumprod[dynamic,9]", run_ort(model, [x]), eager(prim("cumprod", axis=0), [x]))


# --------------------------------------------------------------------------- movement


def test_reshape_transpose_slice():
    x = rand(2, 3, 4)
    check("reshape", prim("reshape", shape=[4, -1]), [x])
    check("reshape[0 copies]", prim("reshape", shape=[0, 12]), [x])
    check("reshape[literal 0]", prim("reshape", shape=[0, 5]), [rand(0, 3)])
    check("transpose", prim("transpose", perm=[2, 0, 1]), [x])
    check("slice", prim("slice", begins=[1, -2], ends=[2, 3], steps=[1, 1]), [x])
    check("slice[steps]", prim("slice", begins=[0, 2, 3], ends=[2, 0, 0], steps=[1, -1, -2]), [x])
    check("slice[omitted]", prim("slice", begins=[2**63 - 1], ends=[-(2**63)], steps=[-1]), [x])
    check("slice[to end]", prim("slice", begins=[0, 1], ends=[SLICE_TO_END, SLICE_TO_END], steps=[]), [x])
    check("slice[none]", prim("slice", begins=[], ends=[], steps=[]), [x])


def test_indexing_front_end():
    x = rand(5, 6)
    check("getitem", lambda v: (v[::-1, 1:], v[1:4:2, ::-2], v[..., 3], v[None, 2]), [x])


def test_broadcast_concat_tile_flip():
    x = rand(3, 1)
    check("broadcast_to", prim("broadcast_to", shape=[2, 3, 4]), [x])
    check("broadcast_like", lambda v, like: F.broadcast_like(v, like), [x, rand(2, 3, 4)])
    check("concat", prim("concat", axis=1), [rand(2, 3), rand(2, 1), rand(2, 2)])
    check("tile", prim("tile", reps=[2, 3]), [rand(2, 3)])
    check("flip", prim("flip", axes=[0, 2]), [rand(2, 3, 4)])
    check("flip[none]", prim("flip", axes=[]), [rand(2, 3)])
    check("front ends", lambda a: (F.tile(a, 2), F.flip(a), F.stack([a, a], 1), F.swapaxes(a, 0, 1)), [rand(2, 3)])


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "symmetric", "wrap"])
def test_pad(mode):
    x = rand(4, 5)
    check(f"pad[{mode}]", prim("pad", pads=[1, 2, 3, 0], mode=mode, value=1.5), [x])
    check(f"pad[{mode},int32]", prim("pad", pads=[0, 2, 1, 1], mode=mode, value=7.0), [rint(3, 4)])
    if mode in ("symmetric", "wrap"):
        check(f"pad[{mode},full]", prim("pad", pads=[4, 4, 5, 0], mode=mode), [x])


def test_pad_refuses_periodic_reflect():
    with pytest.raises(NotImplementedError, match="'pad'.*reflect"):
        export_onnx(prim("pad", pads=[5, 0], mode="reflect"), [F.asarray(rand(3))])


def test_raster():
    x, y = rand(3, 4), rand(5)
    # region 0: x transposed into rows 0..3 of a [5, 4] output's first 3 columns; region 1: y into column 3
    regions = [0, 2, 0, 0, 4, 3, 1, 4, 4, 1,
               1, 1, 0, 3, 5, 1, 4,
               -1, 1, 0, 16, 4, 1, 1]  # then the first row copied into the last (read back from the output)
    check("raster", prim("raster", regions=regions, shape=[5, 4]), [x, y])


# --------------------------------------------------------------------------- indexing and sorting


def test_gather_family():
    x = rand(4, 5, 3)
    check("gather", prim("gather", axis=1), [x, np.array([[0, 4], [-1, 2]], np.int32)])
    check("gather[int8]", prim("gather", axis=0), [x, np.array([3, -4, 1], np.int8)])
    check("gather_nd", prim("gather_nd"), [x, np.array([[0, 1], [3, -1], [-4, 2]], np.int64)])
    check("take_along_axis", prim("take_along_axis", axis=1), [x, RNG.integers(-5, 5, (4, 7, 3)).astype(np.int32)])
    check("take_along_axis[broadcast]", prim("take_along_axis", axis=1),
          [x, RNG.integers(0, 5, (1, 2, 3)).astype(np.int64)])
    check("x[int array]", lambda v: (v[np.array([0, 2, -1])], v[:, np.array([1, 1]), 0]), [x])

    def top(v):  # indices from the data: broadcast along a dynamic axis
        return F.take_along_axis(v, F.argmax(v, axis=1, keepdims=True), axis=1)
    model = check("take_along_axis[dynamic]", top, [x], dynamic_axes={"input0": [0, 2]})
    x2 = rand(7, 5, 2)
    compare("take_along_axis[dynamic, 7x5x2]", run_ort(model, [x2]), eager(top, [x2]))


def test_scatter_family():
    x = rand(4, 5)
    idx = np.array([[0, 1], [3, -1], [2, 2]], np.int64)
    for red in ("none", "add", "mul"):
        check(f"scatter_nd[{red}]", prim("scatter_nd", reduction=red), [x, idx, rand(3)])
        check(f"put_along_axis[{red}]", prim("put_along_axis", axis=1, reduction=red),
              [x, np.array([[0, 4], [1, 2], [3, 0], [4, 4]], np.int32)[:, :1], rand(4, 1)])
    check("put_along_axis[broadcast]", prim("put_along_axis", axis=1), [x, np.array([[1, 3]], np.int32), rand(1)])
    check("scatter_nd[rows]", prim("scatter_nd"), [x, np.array([[1], [3]], np.int64), rand(2, 5)])
    for red in ("max", "min"):
        with pytest.raises(NotImplementedError, match="opset >= 18"):
            export_onnx(prim("scatter_nd", reduction=red), [F.asarray(v) for v in (x, idx, rand(3))])
        check(f"scatter_nd[{red},opset18]", prim("scatter_nd", reduction=red), [x, idx, rand(3)], opset=18)


def test_setitem_front_end():
    def fn(v):
        v = v * 1.0  # see test_setitem_on_an_input: a placeholder updated in place is lost by trace
        v[1] = 0.0
        v[:, 2] = v[:, 0] * 2
        return v
    check("setitem", fn, [rand(3, 4)])


def test_setitem_on_an_input():
    def fn(v):
        v[1] = 0.0
        return v
    check("setitem[input]", fn, [rand(3, 4)])


def test_sort_topk():
    x = rand(4, 6)
    for axis in (0, -1):
        for desc in (False, True):
            check(f"sort[{axis},{desc}]", prim("sort", axis=axis, descending=desc), [x])
    for largest in (False, True):
        check(f"topk[{largest}]", lambda v, lg=largest: F._core.apply("topk", [v], k=3, axis=1, largest=lg), [x])
    check("sort[int32]", prim("sort", axis=1), [rint(3, 5)])
    check("sort[bool]", prim("sort", axis=0, descending=True), [RNG.random((6, 2)) > 0.5])


# --------------------------------------------------------------------------- compute


def test_matmul():
    for ta in (False, True):
        for tb in (False, True):
            a = rand(2, 4, 3) if ta else rand(2, 3, 4)
            b = rand(5, 4) if tb else rand(4, 5)
            check(f"matmul[{ta},{tb}]", prim("matmul", transpose_a=ta, transpose_b=tb), [a, b])
    check("matmul[1-d]", prim("matmul"), [rand(4), rand(4, 3)])
    check("matmul[int32]", prim("matmul"), [rint(3, 4), rint(4, 2)])


def test_conv_family():
    x = rand(2, 4, 9, 8)
    w = rand(6, 2, 3, 2)
    check("conv2d", prim("conv2d", stride=[2, 1], pads=[1, 0, 2, 1], dilation=[1, 2], groups=2), [x, w, rand(6)])
    check("conv2d[unbatched]", prim("conv2d", pads=[1, 1, 1, 1]), [x[0], rand(3, 4, 3, 3)])
    wt = rand(4, 3, 3, 2)
    check("conv2d_transpose", prim("conv2d_transpose", stride=[2, 3], pads=[1, 0, 0, 1], dilation=[1, 2],
                                   output_padding=[1, 2]), [x, wt, rand(3)])
    check("conv2d_transpose[groups]", prim("conv2d_transpose", stride=[2, 2], groups=2), [x, rand(4, 2, 2, 2)])


@pytest.mark.parametrize("ceil", [False, True])
def test_pooling(ceil):
    # height 10: ceil mode adds a window; width 5 (kernel 3, stride 3, pads 1/1): the extra ceil window would
    # start in the right padding, which PyTorch's rule (ours) drops
    x = rand(2, 3, 10, 5)
    geo = dict(kernel=[3, 3], stride=[2, 3], pads=[1, 1, 1, 1], ceil_mode=ceil)
    check(f"max_pool2d[{ceil}]", prim("max_pool2d", dilation=[1, 1], **geo), [x])
    check(f"max_pool2d[{ceil},dilated]", prim("max_pool2d", kernel=[3, 2], stride=[2, 3], pads=[1, 0, 1, 1],
                                              dilation=[1, 2], ceil_mode=ceil), [x])
    check(f"max_pool2d[{ceil},unbatched]", prim("max_pool2d", kernel=[2, 2], stride=[2, 2], ceil_mode=ceil), [x[0]])
    check(f"max_pool2d[{ceil},int32]", prim("max_pool2d", kernel=[2, 2], stride=[2, 2], ceil_mode=ceil),
          [rint(1, 2, 5, 5)])
    for cip in (False, True):
        check(f"avg_pool2d[{ceil},{cip}]", prim("avg_pool2d", count_include_pad=cip, **geo), [x])
        check(f"avg_pool2d[{ceil},{cip},asym]", prim("avg_pool2d", kernel=[2, 3], stride=[2, 2], pads=[1, 1, 0, 0],
                                                     ceil_mode=ceil, count_include_pad=cip), [rand(1, 2, 7, 6)])


def test_softmax_layer_norm():
    x = rand(2, 3, 5)
    for op in ("softmax", "log_softmax"):
        for axis in (-1, 1, 0):
            check(f"{op}[{axis}]", prim(op, axis=axis), [x])
    for axis in (-1, 1):
        check(f"layer_norm[{axis}]", prim("layer_norm", axis=axis, eps=1e-3), [x], tol=dict(rtol=1e-5, atol=1e-5))
    check("layer_norm[dynamic]", prim("layer_norm", axis=1), [x], dynamic_axes={"input0": [0, 2]},
          tol=dict(rtol=1e-5, atol=1e-5))


# --------------------------------------------------------------------------- coverage and errors


def test_every_primitive_has_an_entry():
    assert set(ONNX_OPS) == set(F.OP_TABLE)


def _one_node_graph(op, attrs, in_infos, out_infos):
    g = Graph()
    for k, (dt, shape) in enumerate(in_infos):
        g.inputs.append(g.add_value(f"x{k}", dt, shape))
    outs = [g.add_value(f"y{k}", dt, shape) for k, (dt, shape) in enumerate(out_infos)]
    g.nodes.append(Node(op, attrs, list(g.inputs), outs))
    g.outputs.extend(outs)
    return g


def test_refused_primitives_name_themselves():
    g = _one_node_graph("random_uniform", {"shape": [2], "seed": 1, "offset": 0}, [], [("float32", (2,))])
    with pytest.raises(NotImplementedError, match="'random_uniform'.*random draws"):
        graph_to_onnx(g)
    g = _one_node_graph("max_pool2d_grad", {"kernel": [2, 2], "stride": [2, 2]},
                        [("float32", (1, 1, 4, 4)), ("float32", (1, 1, 2, 2))], [("float32", (1, 1, 4, 4))])
    with pytest.raises(NotImplementedError, match="'max_pool2d_grad'.*gradient"):
        graph_to_onnx(g)


def test_unmapped_primitive_error(monkeypatch):
    monkeypatch.delitem(ONNX_OPS, "softsign")
    with pytest.raises(NotImplementedError, match="primitive 'softsign' has no ONNX mapping"):
        export_onnx(prim("softsign"), [F.asarray(rand(3))])


def test_bad_opset():
    with pytest.raises(ValueError, match="opset 13"):
        export_onnx(prim("exp"), [F.asarray(rand(3))], opset=13)


# --------------------------------------------------------------------------- models


def _two_batches(case, fn, model, shape_a, shape_b, make=rand):
    """Runs the exported model at two input sizes (a dynamic axis) against our eager results."""
    for shape in (shape_a, shape_b):
        x = make(*shape)
        compare(f"{case}{list(shape)}", run_ort(model, [x]), eager(fn, [x]))


def _dims(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_lenet_digits(tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
    try:
        from train_digits import make_model
    finally:
        sys.path.pop(0)
    net = make_model()
    net.eval()
    path = tmp_path / "lenet.onnx"
    model = export_onnx(net, [F.asarray(rand(4, 1, 8, 8, lo=0, hi=1))], path, input_names=["image"],
                        output_names=["logits"], dynamic_axes={"image": {0: "batch"}})
    assert path.exists() and onnx.load(str(path)).graph.node
    assert _dims(model.graph.input[0]) == ["batch", 1, 8, 8] and _dims(model.graph.output[0]) == ["batch", 10]
    names = {i.name for i in model.graph.initializer}
    assert {"0.weight", "0.bias", "3.weight", "9.bias"} <= names
    assert model.producer_name == "mnnpy"
    _two_batches("lenet", net, model, (3, 1, 8, 8), (17, 1, 8, 8))


def test_mlp_dynamic_batch():
    mlp = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 16), nn.SiLU(), nn.Linear(16, 3),
                        nn.LogSoftmax(dim=1))
    model = export_onnx(mlp, [F.asarray(rand(5, 6))], dynamic_axes={"input0": [0]})
    assert _dims(model.graph.output[0]) == ["input0_dim0", 3]
    _two_batches("mlp", mlp, model, (1, 6), (33, 6))


def test_two_dynamic_axes():
    def fn(x):
        y = F.softmax(x[:, 1:] * 2.0, axis=1)  # a slice to the end of a dynamic axis
        return y, F.sum(y, axis=1), F.reshape(x, [-1])

    model = export_onnx(fn, [F.asarray(rand(3, 5))], dynamic_axes={"input0": {0: "N", 1: "T"}, "output2": {0: "NT"}})
    assert [_dims(v) for v in model.graph.output] == [["N", "output0_dim1"], ["N"], ["NT"]]
    with pytest.raises(ValueError, match="'y', which is neither an input"):
        export_onnx(fn, [F.asarray(rand(3, 5))], dynamic_axes={"y": [0]})
    for shape in ((3, 5), (2, 9), (6, 2)):
        x = rand(*shape)
        compare(f"two_dynamic{list(shape)}", run_ort(model, [x]), eager(fn, [x]))


def test_conv_batchnorm_eval():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Conv2d(8, 4, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4), nn.Tanh(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    for bn in (net[1], net[5]):  # non-trivial running statistics
        bn.running_mean = F.asarray(rand(bn.num_features))
        bn.running_var = F.asarray(rand(bn.num_features, lo=0.5, hi=2))
    net.eval()
    model = export_onnx(net, [F.asarray(rand(2, 3, 12, 12))], dynamic_axes={"input0": [0]})
    assert "1.running_mean" in {i.name for i in model.graph.initializer}
    _two_batches("conv_bn", net, model, (2, 3, 12, 12), (5, 3, 12, 12))


def test_conv_transpose_model():
    net = nn.Sequential(nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
                        nn.ConvTranspose2d(3, 2, 2, stride=2))
    net.eval()
    model = export_onnx(net, [F.asarray(rand(1, 4, 5, 5))], dynamic_axes={"input0": [0]})
    _two_batches("conv_transpose", net, model, (1, 4, 5, 5), (3, 4, 5, 5))


def test_transformer_encoder_layer():
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0)
    layer.eval()
    x = rand(5, 2, 16)
    model = check("transformer", layer, [x], tol=dict(rtol=1e-4, atol=1e-5))
    assert "LayerNormalization" in {n.op_type for n in model.graph.node}
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                                           batch_first=True, norm_first=True), 2)
    enc.eval()
    model = export_onnx(enc, [F.asarray(rand(3, 4, 8))], dynamic_axes={"input0": [0]})
    for shape in ((3, 4, 8), (6, 4, 8)):
        x = rand(*shape)
        compare(f"transformer_encoder{list(shape)}", run_ort(model, [x]), eager(enc, [x]),
                dict(rtol=1e-4, atol=1e-5))


def test_lstm():
    lstm = nn.LSTM(4, 6, num_layers=2)
    lstm.eval()

    class Wrap(nn.Module):  # flat outputs (trace takes a Var or a flat list/dict of Vars)
        def __init__(self):
            super().__init__()
            self.lstm = lstm

        def forward(self, x, h0, c0):
            out, (h, c) = self.lstm(x, (h0, c0))
            return {"out": out, "h": h, "c": c}

    w = Wrap()
    xs = [rand(5, 3, 4), rand(2, 3, 6), rand(2, 3, 6)]
    model = check("lstm", w, xs, input_names=["x", "h0", "c0"], tol=dict(rtol=1e-5, atol=1e-5),
                  dynamic_axes={"x": [1], "h0": [1], "c0": [1]})
    assert [o.name for o in model.graph.output] == ["out", "h", "c"]
    assert [_dims(v) for v in (*model.graph.input, *model.graph.output)] == \
        [[5, "x_dim1", 4], [2, "x_dim1", 6], [2, "x_dim1", 6], [5, "x_dim1", 6], [2, "x_dim1", 6], [2, "x_dim1", 6]]
    assert "lstm.weight_ih_l0" in {i.name for i in model.graph.initializer}
    xs = [rand(5, 7, 4), rand(2, 7, 6), rand(2, 7, 6)]
    compare("lstm[batch 7]", run_ort(model, xs), eager(w, xs), dict(rtol=1e-5, atol=1e-5))


def test_control_flow_lowered():
    """lower_control_flow=True: cond and scan are lowered while tracing (where, unrolled steps), a plain graph."""
    def fn(x, s):
        y = F.cond(F.sum(s) > 0, lambda a: a * 2.0 + 1.0, lambda a: F.exp(-a), x)

        def step(carry, xt):
            carry = F.tanh(carry * 0.5 + xt)
            return carry, carry * xt

        carry, ys = F.scan(step, F.zeros((3,)), y)
        return carry, ys

    x = rand(4, 3)
    model = export_onnx(fn, [F.asarray(x), F.asarray(np.float32(1.0))], lower_control_flow=True)
    ops = {n.op_type for n in model.graph.node}
    assert "Where" in ops and not ops & {"If", "Loop", "Scan"}
    for s in (np.array(1.0, np.float32), np.array(-1.0, np.float32)):  # both branches, from the one exported graph
        compare(f"control_flow_lowered[{s}]", run_ort(model, [x, s]), eager(fn, [x, s]))
    with pytest.raises(NotImplementedError, match="lowered"):  # a value-dependent trip count cannot unroll
        export_onnx(newton_sqrt, [F.asarray(np.array([2.0]))], lower_control_flow=True)


# --------------------------------------------------------------------------- control flow: If / Loop


def _graphs(g):
    """g and every sub-graph in it (depth first)."""
    yield g
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(a.g)


def _op_types(model):
    return [n.op_type for g in _graphs(model.graph) for n in g.node]


def _check_names(model):
    """Every value is defined once in the whole model (ONNX's SSA across sub-graphs)."""
    defined = []
    for g in _graphs(model.graph):
        defined += [i.name for i in g.input] + [i.name for i in g.initializer]
        defined += [o for n in g.node for o in n.output if o]
    assert len(defined) == len(set(defined)), sorted(d for d in set(defined) if defined.count(d) > 1)


def check_cf(case, fn, inputs_list, expect, tol=TOL, **kw):
    """Exports fn on the first inputs, asserts the model holds the ``expect`` ops (not lowered) and no
    Where/unrolled copy, then compares onnxruntime with our eager result for every inputs in inputs_list."""
    model = export_onnx(fn, [F.asarray(x) for x in inputs_list[0]], **kw)
    ops = _op_types(model)
    for op in expect:
        assert op in ops, f"{case}: no {op} in {ops}"
    _check_names(model)
    for k, inputs in enumerate(inputs_list):
        compare(f"{case}[{k}]", run_ort(model, inputs), eager(fn, inputs), tol)
    return model


def newton_sqrt(a):
    """Newton's iteration for sqrt(a): the trip count depends on the values of a."""
    def body(s):
        x, it = s
        return x - (x * x - a) / (2 * x), it + 1

    def keep_going(s):
        x, it = s
        return F.logical_and(F.abs(x * x - a).max() > 1e-10 * F.abs(a).max(), it < 60)

    x, it = F.while_loop(keep_going, body, (F.ones_like(a), F.array(0)))
    return x, it


def test_cond_if_both_branches():
    def fn(x, s):
        return F.cond(F.sum(s * x) > 0, lambda a, b: (a * 2.0 + b, F.exp(-a)), lambda a, b: (F.sin(a) - b, a), x, s)

    x, s = rand(4, 3), rand(3)
    model = check_cf("cond", fn, [[x, s], [x, -s], [-x, s]], ["If"])
    assert "Where" not in _op_types(model)
    outcomes = {bool(np.sum(xx * ss) > 0) for xx, ss in ((x, s), (x, -s))}
    assert outcomes == {True, False}  # both branches taken by the one exported graph


def test_cond_predicate_shapes_and_types():
    """A one-element predicate that is not 0-d, an int predicate, and a branch that returns its operand."""
    def fn(x, k):
        y = F.cond(F.reshape(F.sum(x) > 1.0, [1, 1]), lambda a: a + 1.0, lambda a: a, x)
        c = F.cond(F.sum(x) > 0, lambda: F.asarray(np.float32(1.5)), lambda: F.asarray(np.float32(-2.0)))
        return F.cond(k, lambda a: a * 3.0, lambda a: a, y), c

    x = rand(2, 2)
    check_cf("cond_predicates", fn, [[x, np.array(1, np.int32)], [x, np.array(0, np.int32)],
                                     [-np.abs(x), np.array(2, np.int32)]], ["If"])


def test_scan_rnn_per_step_outputs():
    w = rand(5, 5, lo=-0.5, hi=0.5)
    wv = F.asarray(w)

    def rnn(xs, h0):
        h, (ys, hs) = F.scan(lambda h, x: (F.tanh(h @ wv + x), (F.tanh(h @ wv + x) * 2.0, h)), h0, xs)
        return h, ys, hs

    xs, h0 = rand(6, 3, 5), rand(3, 5)
    model = check_cf("scan_rnn", rnn, [[xs, h0], [rand(6, 3, 5), rand(3, 5)]], ["Loop"], dict(rtol=1e-5, atol=1e-5))
    assert _op_types(model).count("Tanh") in (1, 2)  # rolled, not unrolled 6 times
    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    assert len(loop.output) == 3  # the final h, then two per-step outputs
    # the numbers, against numpy
    h, ys = h0, []
    for t in range(6):
        h_new = np.tanh(h @ w + xs[t])
        ys.append(h)
        h = h_new
    got = run_ort(model, [xs, h0])
    np.testing.assert_allclose(got[0], h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[2], np.stack(ys), rtol=1e-5, atol=1e-5)


def test_fori_loop():
    def fn(x):
        return F.fori_loop(2, 7, lambda i, acc: acc * 0.5 + F.cos(acc) * F.asarray(i).astype("float32") * 0.1, x)

    check_cf("fori_loop", fn, [[rand(3, 4)], [rand(3, 4)]], ["Loop"])


def test_fori_loop_two_states_of_other_dtypes():
    def fn(x, n):
        def body(i, s):
            a, b = s
            return a + b * i, F.maximum(b, a)
        return F.fori_loop(0, 4, body, (n, x))

    check_cf("fori_loop_int", fn, [[rint(3, dtype="int64"), rint(3, dtype="int64")]], ["Loop"])


def test_while_loop_newton_sqrt():
    a1 = np.array([2.0, 9.0, 0.25, 1e4])
    a2 = np.array([1.0, 1.0, 1.0, 1.0])  # converges at once: a different trip count from the same graph
    a3 = np.array([1e-6, 3.0, 7.0, 1e8])
    model = check_cf("newton", newton_sqrt, [[a1], [a2], [a3]], ["Loop"], dict(rtol=1e-12, atol=0))
    its = [int(run_ort(model, [a])[1]) for a in (a1, a2, a3)]
    assert len(set(its)) == 3 and its[1] == 0
    np.testing.assert_allclose(run_ort(model, [a3])[0], np.sqrt(a3), rtol=1e-10)
    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    assert loop.input[0] == ""  # no trip count: the condition alone ends it


@pytest.mark.parametrize("opset", [17, onnx.defs.onnx_opset_version()])
def test_scan_with_cond_inside(opset):
    """Nesting: an If inside a Loop body, and a while_loop inside a scan body."""
    def fn(xs, h0):
        def step(h, x):
            h = F.cond(F.sum(x) > 0, lambda a: F.tanh(a + x), lambda a: a * 0.5 - x, h)
            n = F.while_loop(lambda s: s[0] < F.abs(x).sum(), lambda s: (s[0] * 2.0 + 0.5, s[1] + 1),
                             (F.array(np.float32(0.1)), F.array(0)))
            return h, (h, n[1])
        h, (hs, ns) = F.scan(step, h0, xs)
        return h, hs, ns

    xs = rand(7, 4)
    model = check_cf(f"scan_cond[opset {opset}]", fn, [[xs, rand(4)], [rand(7, 4), rand(4)]], ["Loop", "If"],
                     opset=opset)
    body = next(n for n in model.graph.node if n.op_type == "Loop").attribute[0].g
    assert {n.op_type for n in body.node} >= {"If", "Loop"}
    taken = {bool(np.sum(x) > 0) for x in xs}
    assert taken == {True, False}


class _Captures(nn.Module):
    """Weights (parameters) and values computed from the inputs, read inside the bodies."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(rand(4, 4, lo=-0.5, hi=0.5))
        self.b = nn.Parameter(rand(4))
        self.gain = nn.Parameter(rand(4, lo=0.5, hi=1.5))

    def forward(self, xs, h0):
        scale = F.mean(xs * xs) + 1.0  # computed from an input: a capture of the bodies
        offset = F.sum(h0) * 0.1

        def step(h, x):
            h = F.cond(F.sum(x) > offset, lambda a: F.tanh(a @ self.w + x + self.b),
                       lambda a: a * self.gain / scale, h)
            return h, h * scale
        h, ys = F.scan(step, h0, xs)
        h = F.fori_loop(0, 3, lambda i, v: F.tanh(v @ self.w) + offset, h)
        return h, ys


def test_captures_and_weights_in_bodies():
    m = _Captures()
    xs, h0 = rand(5, 2, 4), rand(2, 4)
    model = check_cf("captures", m, [[xs, h0], [rand(5, 2, 4), rand(2, 4)]], ["Loop", "If"],
                     dict(rtol=1e-5, atol=1e-5))
    assert m.w.requires_grad and m.b.requires_grad  # restored after the trace
    inits = [i.name for i in model.graph.initializer]
    assert {"w", "b", "gain"} <= set(inits)
    assert len([i for i in model.graph.initializer if list(i.dims) == [4, 4]]) == 1  # the weight is stored once
    for g in _graphs(model.graph):
        assert not g.initializer or g is model.graph  # body constants live in the main graph


def test_loop_reads_outer_values_without_carrying_them():
    """Captured outer values are read from the outer scope, not carried through the Loop."""
    def fn(x, y):
        z = y * 2.0
        return F.fori_loop(0, 3, lambda i, s: s + z, x)

    model = check_cf("outer_scope", fn, [[rand(3), rand(3)]], ["Loop"])
    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    assert len(loop.input) == 3 and len(loop.output) == 1  # (M, cond, s): z is read by name

    def unchanged(x, y):  # a state the body passes through is the initial value itself
        return F.fori_loop(0, 3, lambda i, s: (s[0] * 2.0, s[1]), (x, y))

    model = check_cf("pass_through", unchanged, [[rand(3), rand(2)]], ["Loop"])
    assert len(next(n for n in model.graph.node if n.op_type == "Loop").output) == 1
    model = export_onnx(lambda x: F.fori_loop(0, 3, lambda i, s: s, x), [F.asarray(rand(3))])
    assert [n.op_type for n in model.graph.node] == ["Identity"]  # nothing to loop over


def test_import_round_trip():
    """Our ONNX importer runs the exported If/Loop models (its own sub-graph walk) with the same results."""
    from mnn_nn.deploy.onnx_import import load_onnx

    m = _Captures()
    cases = [(m, [rand(5, 2, 4), rand(2, 4)]), (newton_sqrt, [np.array([2.0, 9.0, 0.25, 1e4])])]
    for k, (fn, inputs) in enumerate(cases):
        model = export_onnx(fn, [F.asarray(x) for x in inputs])
        got = load_onnx(model)(*inputs)
        compare(f"round_trip[{k}]", [np.asarray(v.read()) for v in got], eager(fn, inputs))


def test_conditions_not_bool_scalars():
    """if/loop primitives whose conditions are one-element float tensors (the native ops accept them)."""
    from mnn_expr import _native
    from mnn_expr.graph_capture import build_graph, to_subgraph

    i, s = F.placeholder((), "int64", name="i"), F.placeholder((3,), "float32", name="s")
    s2 = s * 0.5
    cond = F.reshape(F.sum(s2) - 1.0, [1])  # float32[1]: nonzero is true
    body = to_subgraph(build_graph([cond, s2], ["c", "s2"], [i, s], ["i", "s"]))
    a = F.placeholder((3,), "float32", name="a")
    then, other = (to_subgraph(build_graph([y], ["y"], [a], ["a"])) for y in (F.exp(a), a - 1.0))

    def fn(x):
        y = _native.apply("loop", [F.reshape(F.sum(x), [1]), x], {"body": body, "trip_count": 10})[0]
        return _native.apply("if", [F.reshape(F.sum(y) - 1.0, [1, 1]), y], {"then_graph": then, "else_graph": other})

    check_cf("float_conditions", fn, [[np.array([8.0, 4.0, 1.0], np.float32)], [np.zeros(3, np.float32)],
                                      [np.array([0.5, 0.25, 0.25], np.float32)]], ["Loop", "If"])


def test_control_flow_with_dynamic_axes():
    def fn(x):
        return F.fori_loop(0, 3, lambda i, s: s * 2.0, x)

    for lower in (False, True):
        model = export_onnx(fn, [F.asarray(rand(2, 3))], dynamic_axes={"input0": [0]}, lower_control_flow=lower)
        assert ("Loop" in {n.op_type for n in model.graph.node}) != lower
        for shape in ((2, 3), (5, 3)):
            x = rand(*shape)
            compare(f"cf_dynamic{'_lowered' if lower else ''}{list(shape)}", run_ort(model, [x]), eager(fn, [x]))


@pytest.mark.parametrize("module", ["mnn_nn.deploy.onnx_export", "mnn_nn.deploy._onnx_emit",
                                    "mnn_nn.deploy._onnx_elementwise", "mnn_nn.deploy._onnx_structural",
                                    "mnn_nn.deploy._onnx_control_flow"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


def test_report():
    """Prints the largest differences (run with -s)."""
    by_abs = sorted(MAX_DIFF.items(), key=lambda kv: -kv[1][0])[:12]
    by_rel = sorted(MAX_DIFF.items(), key=lambda kv: -kv[1][1])[:12]
    print(f"\n{len(MAX_DIFF)} cases; largest |onnxruntime - ours|:", ", ".join(f"{k}: {v[0]:.2e}" for k, v in by_abs))
    print("largest relative difference (|ours| > 1e-6):", ", ".join(f"{k}: {v[1]:.2e}" for k, v in by_rel))
