"""Every gradient rule against central finite differences in float64 (hypothesis-drawn shapes,
broadcasting and 0-d included), against torch where it has the op, and grad-of-grad checks.

Finite differences evaluate the primitive's forward pass (checked against numpy by the op
records) at x +- eps along each input element, so they are an independent reference for the
rules."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mnn_expr as F
from mnn_expr import OP_TABLE
from mnn_expr.grad_rules import NON_DIFFERENTIABLE, NON_DIFFERENTIABLE_OUTPUTS, RULES

FEW = settings(max_examples=10)


def ap(op: str, inputs: list, **attrs) -> F.Var:
    return F.apply(op, inputs, **attrs)[0]


def _vars(arrays: list) -> list:
    xs = []
    for a in arrays:
        x = F.array(a)
        x.requires_grad = True
        xs.append(x)
    return xs


def numeric_vjp(f: Callable, arrays: list, ct: np.ndarray, eps: float) -> list:
    def loss(vals: list) -> float:
        return float(np.sum(np.asarray(f(*[F.array(v) for v in vals]).read(), dtype=np.float64) * ct))

    out = []
    for i, a in enumerate(arrays):
        num = np.zeros(a.shape, dtype=np.float64)
        for j in np.ndindex(a.shape):
            vals = list(arrays)
            ap_, am = a.copy(), a.copy()
            ap_[j] += eps
            am[j] -= eps
            vals[i] = ap_
            lp = loss(vals)
            vals[i] = am
            num[j] = (lp - loss(vals)) / (2 * eps)
        out.append(num)
    return out


def check(f: Callable, arrays: list, seed: int = 0, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-6,
          wrt: list | None = None) -> list:
    """Compares grad(f) (with a random cotangent) with central finite differences; returns the grads."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    wrt = list(range(len(arrays))) if wrt is None else wrt
    xs = _vars(arrays)
    y = f(*xs)
    ct = np.random.default_rng(seed).standard_normal(y.shape)
    gs = F.grad(y, [xs[i] for i in wrt], F.array(ct))
    num = numeric_vjp(lambda *v: f(*[v[k] if k in wrt else F.array(arrays[k]) for k in range(len(arrays))]),
                      arrays, ct, eps)
    for k, i in enumerate(wrt):
        assert gs[k].shape == arrays[i].shape
        np.testing.assert_allclose(np.asarray(gs[k].read()), num[i], rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")
    # the same gradients in lazy mode (every rule's graph run by the lazy executor)
    F.lazy_eval(True)
    try:
        xl = _vars(arrays)
        gl = F.grad(f(*xl), [xl[i] for i in wrt], F.array(ct))
        F.evaluate(*gl)
        for k in range(len(wrt)):
            np.testing.assert_allclose(np.asarray(gl[k].read()), np.asarray(gs[k].read()), rtol=1e-12, atol=1e-14,
                                       err_msg=f"lazy gradient of input {wrt[k]}")
    finally:
        F.lazy_eval(False)
    return [np.asarray(g.read()) for g in gs]


# ---- strategies -----------------------------------------------------------------------------

dims = st.integers(1, 3)
shapes = st.lists(dims, min_size=0, max_size=3).map(tuple)
seeds = st.integers(0, 2**31 - 1)


@st.composite
def broadcast_pair(draw) -> tuple:
    base = draw(st.lists(dims, min_size=0, max_size=3))

    def variant() -> tuple:
        s = list(base)
        s = s[draw(st.integers(0, len(s))):]  # drop leading dims
        return tuple(1 if draw(st.booleans()) else d for d in s)

    return variant(), variant()


# ---- elementwise unary ----------------------------------------------------------------------

# (torch function, sampler(rng, shape) -> values on the op's smooth domain)
def _uni(lo: float, hi: float) -> Callable:
    return lambda r, s: r.uniform(lo, hi, s)


def _away0(r: np.random.Generator, s: tuple) -> np.ndarray:
    return r.uniform(0.2, 2.0, s) * r.choice([-1.0, 1.0], s)


def _frac(r: np.random.Generator, s: tuple) -> np.ndarray:
    return r.integers(-3, 3, s) + r.uniform(0.1, 0.4, s)


UNARY = {
    "negative": (torch.neg, _uni(-2, 2)), "abs": (torch.abs, _away0), "sign": (torch.sign, _away0),
    "floor": (torch.floor, _frac), "ceil": (torch.ceil, _frac), "round": (torch.round, _frac),
    "trunc": (torch.trunc, _frac), "sqrt": (torch.sqrt, _uni(0.2, 3)), "rsqrt": (torch.rsqrt, _uni(0.2, 3)),
    "cbrt": (lambda t: torch.sign(t) * t.abs() ** (1 / 3), _away0), "square": (torch.square, _uni(-2, 2)),
    "reciprocal": (torch.reciprocal, _away0), "exp": (torch.exp, _uni(-2, 2)), "exp2": (torch.exp2, _uni(-2, 2)),
    "expm1": (torch.expm1, _uni(-2, 2)), "log": (torch.log, _uni(0.2, 3)), "log2": (torch.log2, _uni(0.2, 3)),
    "log10": (torch.log10, _uni(0.2, 3)), "log1p": (torch.log1p, _uni(-0.8, 3)), "sin": (torch.sin, _uni(-3, 3)),
    "cos": (torch.cos, _uni(-3, 3)), "tan": (torch.tan, _uni(-1.2, 1.2)), "arcsin": (torch.asin, _uni(-0.9, 0.9)),
    "arccos": (torch.acos, _uni(-0.9, 0.9)), "arctan": (torch.atan, _uni(-3, 3)), "sinh": (torch.sinh, _uni(-2, 2)),
    "cosh": (torch.cosh, _uni(-2, 2)), "tanh": (torch.tanh, _uni(-2, 2)), "arcsinh": (torch.asinh, _uni(-3, 3)),
    "arccosh": (torch.acosh, _uni(1.2, 3)), "arctanh": (torch.atanh, _uni(-0.9, 0.9)),
    "erf": (torch.erf, _uni(-2, 2)), "erfc": (torch.erfc, _uni(-2, 2)), "erfinv": (torch.erfinv, _uni(-0.9, 0.9)),
    "sigmoid": (torch.sigmoid, _uni(-3, 3)), "relu": (torch.relu, _away0),
    "gelu": (torch.nn.functional.gelu, _uni(-3, 3)),
    "gelu_tanh": (lambda t: torch.nn.functional.gelu(t, approximate="tanh"), _uni(-3, 3)),
    "silu": (torch.nn.functional.silu, _uni(-3, 3)), "softplus": (torch.nn.functional.softplus, _uni(-3, 3)),
    "softsign": (torch.nn.functional.softsign, _away0),
}


def _torch_grads(tf: Callable, arrays: list, ct: np.ndarray) -> list:
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    y = tf(*ts)
    gs = torch.autograd.grad(y, ts, torch.tensor(ct), allow_unused=True)
    return [np.zeros_like(a) if g is None else g.numpy() for a, g in zip(arrays, gs)]


@pytest.mark.parametrize("name", sorted(UNARY))
@FEW
@given(shape=shapes, seed=seeds)
def test_unary(name: str, shape: tuple, seed: int) -> None:
    tf, sample = UNARY[name]
    rng = np.random.default_rng(seed)
    x = sample(rng, shape)
    f = F.UNARY_FUNCS[name]
    (g,) = check(f, [x], seed)
    ct = np.random.default_rng(seed).standard_normal(shape)
    (tg,) = _torch_grads(tf, [x], ct)
    np.testing.assert_allclose(g, tg, rtol=1e-7, atol=1e-9)


# ---- elementwise binary (broadcasting) -------------------------------------------------------

def _pos(r, s):
    return r.uniform(0.5, 2.0, s)


BINARY = {
    "add": (torch.add, _uni(-2, 2), _uni(-2, 2)), "subtract": (torch.sub, _uni(-2, 2), _uni(-2, 2)),
    "multiply": (torch.mul, _uni(-2, 2), _uni(-2, 2)), "divide": (torch.div, _uni(-2, 2), _away0),
    "power": (torch.pow, _pos, _uni(-2, 2)), "maximum": (torch.maximum, _uni(-2, 2), _uni(-2, 2)),
    "minimum": (torch.minimum, _uni(-2, 2), _uni(-2, 2)), "arctan2": (torch.atan2, _away0, _away0),
    "hypot": (torch.hypot, _away0, _away0), "copysign": (torch.copysign, _away0, _away0),
    "squared_difference": (lambda a, b: (a - b) ** 2, _uni(-2, 2), _uni(-2, 2)),
    "mod": (torch.remainder, _uni(-3, 3), _away0), "fmod": (torch.fmod, _uni(-3, 3), _away0),
    "floor_divide": (lambda a, b: torch.floor_divide(a, b), _uni(-3, 3), _away0),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@FEW
@given(shapes2=broadcast_pair(), seed=seeds)
def test_binary(name: str, shapes2: tuple, seed: int) -> None:
    tf, sa, sb = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = sa(rng, shapes2[0]), sb(rng, shapes2[1])
    f = F.BINARY_FUNCS[name]
    ga, gb = check(f, [a, b], seed)
    out_shape = np.broadcast_shapes(a.shape, b.shape)
    ct = np.random.default_rng(seed).standard_normal(out_shape)
    if name in ("mod", "fmod", "floor_divide"):  # torch: no gradient through the rounding
        return
    ta, tb = _torch_grads(tf, [a, b], ct)
    np.testing.assert_allclose(ga, ta, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gb, tb, rtol=1e-7, atol=1e-9)


def test_maximum_ties_split_like_torch() -> None:
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0])
    xs = _vars([a, b])
    ga, gb = F.grad(F.maximum(*xs).sum(), xs)
    ta, tb = _torch_grads(lambda x, y: torch.maximum(x, y), [a, b], np.ones(3))
    np.testing.assert_allclose(ga.read(), ta)
    np.testing.assert_allclose(gb.read(), tb)


@FEW
@given(shapes2=broadcast_pair(), seed=seeds)
def test_where(shapes2: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shapes2[0]), rng.standard_normal(shapes2[1])
    c = F.array(rng.random(np.broadcast_shapes(a.shape, b.shape)) > 0.5)
    check(lambda x, y: F.where(c, x, y), [a, b], seed)


def test_cast_float_to_float() -> None:
    x = np.random.default_rng(1).standard_normal((3, 2))
    check(lambda v: F.cast(F.cast(v, F.float32) * 2.0, F.float64), [x], eps=1e-2, rtol=1e-4, atol=1e-4)


# ---- reductions and scans -----------------------------------------------------------------------

@st.composite
def shape_axes(draw, min_ndim: int = 0) -> tuple:
    shape = draw(st.lists(dims, min_size=min_ndim, max_size=3).map(tuple))
    if not shape:
        return shape, []
    axes = draw(st.lists(st.integers(-len(shape), len(shape) - 1), max_size=len(shape),
                         unique_by=lambda a: a % len(shape)))
    return shape, axes


@pytest.mark.parametrize("op", ["reduce_sum", "reduce_mean", "reduce_prod", "reduce_max", "reduce_min"])
@FEW
@given(sa=shape_axes(), keep=st.booleans(), seed=seeds)
def test_reductions(op: str, sa: tuple, keep: bool, seed: int) -> None:
    shape, axes = sa
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    if op == "reduce_prod" and x.size > 1 and seed % 2:
        x.flat[seed % x.size] = 0.0  # the gradient is exact at zeros
    (g,) = check(lambda v: ap(op, [v], axes=axes, keepdims=keep), [x], seed)
    tf = {"reduce_sum": torch.sum, "reduce_mean": torch.mean, "reduce_prod": None, "reduce_max": torch.amax,
          "reduce_min": torch.amin}[op]
    if tf is not None:
        dims_ = tuple(a % len(shape) for a in axes) if axes else tuple(range(len(shape)))
        y = ap(op, [F.array(x)], axes=axes, keepdims=keep)
        ct = np.random.default_rng(seed).standard_normal(y.shape)
        (tg,) = _torch_grads(lambda t: tf(t, dim=dims_, keepdim=keep) if dims_ else tf(t), [x], ct)
        np.testing.assert_allclose(g, tg, rtol=1e-7, atol=1e-9)


def test_reduce_max_ties_split_evenly() -> None:
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]])
    xs = _vars([x])
    (g,) = F.grad(ap("reduce_max", xs, axes=[1], keepdims=False).sum(), xs)
    (tg,) = _torch_grads(lambda t: torch.amax(t, dim=1), [x], np.ones(2))
    np.testing.assert_allclose(g.read(), tg)


@pytest.mark.parametrize("op", ["cumsum", "cumprod"])
@FEW
@given(shape=st.lists(dims, min_size=1, max_size=3).map(tuple), data=st.data(), seed=seeds)
def test_scans(op: str, shape: tuple, data, seed: int) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    ex, rev = data.draw(st.booleans()), data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    if op == "cumprod" and seed % 2:  # zeros (one or two): the gradient is exact there
        x.flat[seed % x.size] = 0.0
        x.flat[(seed // 7) % x.size] = 0.0 if seed % 3 else x.flat[(seed // 7) % x.size]
    check(lambda v: ap(op, [v], axis=axis, exclusive=ex, reverse=rev), [x], seed)


# ---- movement -------------------------------------------------------------------------------------

@FEW
@given(shape=shapes, seed=seeds)
def test_reshape_transpose_flip(shape: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    check(lambda v: ap("reshape", [v], shape=[-1]), [x], seed)
    perm = list(rng.permutation(len(shape)))
    check(lambda v: ap("transpose", [v], perm=perm) * 1.0, [x], seed)
    if shape:
        axes = sorted(set(int(a) for a in rng.integers(0, len(shape), 2)))
        check(lambda v: ap("flip", [v], axes=axes), [x], seed)


@FEW
@given(shape=st.lists(dims, min_size=1, max_size=3).map(tuple), data=st.data(), seed=seeds)
def test_slice(shape: tuple, data, seed: int) -> None:
    n = len(shape)
    begins = data.draw(st.lists(st.integers(-4, 4), min_size=n, max_size=n))
    ends = data.draw(st.lists(st.integers(-4, 4), min_size=n, max_size=n))
    steps = data.draw(st.lists(st.sampled_from([-2, -1, 1, 2]), min_size=n, max_size=n))
    if seed % 2:
        steps = [1] * n  # the contiguous path
    x = np.random.default_rng(seed).standard_normal(shape)
    check(lambda v: ap("slice", [v], begins=begins, ends=ends, steps=steps), [x], seed)


@FEW
@given(pair=broadcast_pair(), seed=seeds)
def test_broadcast_to(pair: tuple, seed: int) -> None:
    src, _ = pair
    target = np.broadcast_shapes(*pair)
    target = (2,) + tuple(target)
    x = np.random.default_rng(seed).standard_normal(src)
    check(lambda v: ap("broadcast_to", [v], shape=list(target)), [x], seed)
    like = F.zeros(target)
    check(lambda v: ap("broadcast_like", [v, like]), [x], seed)


@FEW
@given(shape=st.lists(dims, min_size=1, max_size=3).map(tuple), data=st.data(), seed=seeds)
def test_concat_tile(shape: tuple, data, seed: int) -> None:
    axis = data.draw(st.integers(0, len(shape) - 1))
    k = data.draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    arrs = []
    for _ in range(k):
        s = list(shape)
        s[axis] = int(rng.integers(1, 3))
        arrs.append(rng.standard_normal(s))
    check(lambda *vs: ap("concat", list(vs), axis=axis - len(shape) if seed % 2 else axis), arrs, seed)
    reps = data.draw(st.lists(st.integers(1, 2), min_size=len(shape), max_size=len(shape)))
    check(lambda v: ap("tile", [v], reps=reps), [arrs[0]], seed)


@pytest.mark.parametrize("mode", ["constant", "reflect", "symmetric", "edge", "wrap"])
@FEW
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple), data=st.data(), seed=seeds)
def test_pad(mode: str, shape: tuple, data, seed: int) -> None:
    pads = data.draw(st.lists(st.integers(0, 3), min_size=2 * len(shape), max_size=2 * len(shape)))
    x = np.random.default_rng(seed).standard_normal(shape)
    (g,) = check(lambda v: ap("pad", [v], pads=pads, mode=mode, value=0.5), [x], seed)
    if mode != "wrap":
        out = ap("pad", [F.array(x)], pads=pads, mode=mode, value=0.5)
        ct = np.random.default_rng(seed).standard_normal(out.shape)
        # numpy's pad is linear in x: its adjoint by np.add.at over the same index map
        ids = np.pad(np.arange(x.size).reshape(shape), [(pads[2 * i], pads[2 * i + 1]) for i in range(len(shape))],
                     mode=mode, **({"constant_values": -1} if mode == "constant" else {}))
        ref = np.zeros(x.size)
        np.add.at(ref, ids[ids >= 0], ct[ids >= 0])
        np.testing.assert_allclose(g, ref.reshape(shape), rtol=1e-10, atol=1e-12)


def test_raster() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal(4)
    # region 1: a transposed into a 3x2 block at the top of a 4x2 output;
    # region 2: b[1:3] over row 2 (overwriting part of region 1); region 3: row 0 copied (self) into row 3
    regions = [0, 2, 0, 0, 3, 2, 1, 3, 2, 1,
               1, 1, 1, 4, 2, 1, 1,
               -1, 1, 0, 6, 2, 1, 1]
    check(lambda x, y: F.raster([x, y], regions, [4, 2]), [a, b])


# ---- indexing ---------------------------------------------------------------------------------------

@FEW
@given(shape=st.lists(dims, min_size=1, max_size=3).map(tuple), data=st.data(), seed=seeds)
def test_gathers(shape: tuple, data, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    axis = data.draw(st.integers(0, len(shape) - 1))
    idx = F.array(rng.integers(-shape[axis], shape[axis], data.draw(shapes)).astype(np.int64))
    check(lambda v: ap("gather", [v, idx], axis=axis), [x], seed)
    k = data.draw(st.integers(1, len(shape)))
    ind = np.stack([rng.integers(0, shape[i], (3,)) for i in range(k)], axis=-1)
    check(lambda v: ap("gather_nd", [v, F.array(ind)]), [x], seed)
    ishape = [int(rng.integers(1, 4)) if i == axis else (shape[i] if rng.random() < 0.7 else 1)
              for i in range(len(shape))]
    ta = F.array(rng.integers(-shape[axis], shape[axis], ishape))
    check(lambda v: ap("take_along_axis", [v, ta], axis=axis), [x], seed)


@pytest.mark.parametrize("reduction", ["none", "add", "max", "min"])
@FEW
@given(shape=st.lists(dims, min_size=1, max_size=3).map(tuple), seed=seeds)
def test_scatters(reduction: str, shape: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    ind = F.array(rng.integers(0, shape[0], (4, 1)))  # duplicates likely: the last write wins
    u = rng.standard_normal((4,) + shape[1:])
    check(lambda d, v: ap("scatter_nd", [d, ind, v], reduction=reduction), [x, u], seed)
    axis = len(shape) - 1
    ishape = list(shape)
    ishape[axis] = 2
    pa = F.array(rng.integers(0, shape[axis], ishape))
    u2 = rng.standard_normal(ishape)
    check(lambda d, v: ap("put_along_axis", [d, pa, v], axis=axis, reduction=reduction), [x, u2], seed)


@pytest.mark.parametrize("reduction", ["amax", "amin"])
def test_scatter_extreme_ties_like_torch(reduction: str) -> None:
    x = np.array([1.0, 5.0, 2.0, 0.0])
    u = np.array([5.0, 3.0, 5.0, -1.0])
    ind = np.array([1, 2, 1, 3])
    ours = "max" if reduction == "amax" else "min"
    xs = _vars([x, u])
    y = ap("put_along_axis", [xs[0], F.array(ind), xs[1]], axis=0, reduction=ours)
    ct = np.array([1.0, 2.0, 3.0, 4.0])
    gx, gu = F.grad(y, xs, F.array(ct))
    tx, tu = (torch.tensor(a, requires_grad=True) for a in (x, u))
    ty = tx.scatter_reduce(0, torch.tensor(ind), tu, reduce=reduction, include_self=True)
    np.testing.assert_allclose(ty.detach().numpy(), y.read())
    tgx, tgu = torch.autograd.grad(ty, [tx, tu], torch.tensor(ct))
    np.testing.assert_allclose(gx.read(), tgx.numpy())
    np.testing.assert_allclose(gu.read(), tgu.numpy())


@FEW
@given(shape=st.lists(dims, min_size=1, max_size=3).map(tuple), data=st.data(), seed=seeds)
def test_sort_topk(shape: tuple, data, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal(shape)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    desc = data.draw(st.booleans())
    check(lambda v: F.apply("sort", [v], axis=axis, descending=desc)[0], [x], seed)
    k = data.draw(st.integers(0, shape[axis]))
    check(lambda v: F.apply("topk", [v], k=k, axis=axis, largest=desc)[0], [x], seed)


# ---- matmul, convolution, pooling ----------------------------------------------------------------------

@FEW
@given(data=st.data(), seed=seeds)
def test_matmul(data, seed: int) -> None:
    m, k, n = (data.draw(dims) for _ in range(3))
    a_vec, b_vec = data.draw(st.booleans()), data.draw(st.booleans())
    ta, tb = data.draw(st.booleans()), data.draw(st.booleans())
    ba = data.draw(st.lists(st.integers(1, 2), max_size=2))
    bb = data.draw(st.lists(st.integers(1, 2), max_size=2))
    if len(ba) == len(bb):
        bb = [1 if x != y else y for x, y in zip(ba, bb)]
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k,) if a_vec else tuple(ba) + ((k, m) if ta else (m, k)))
    b = rng.standard_normal((k,) if b_vec else tuple(bb) + ((n, k) if tb else (k, n)))
    (ga, gb) = check(lambda x, y: ap("matmul", [x, y], transpose_a=ta, transpose_b=tb), [a, b], seed)
    y = ap("matmul", [F.array(a), F.array(b)], transpose_a=ta, transpose_b=tb)
    ct = np.random.default_rng(seed).standard_normal(y.shape)

    def tf(x, z):
        x = x.transpose(-1, -2) if ta and x.ndim >= 2 else x
        z = z.transpose(-1, -2) if tb and z.ndim >= 2 else z
        return torch.matmul(x, z)

    ta_, tb_ = _torch_grads(tf, [a, b], ct)
    np.testing.assert_allclose(ga, ta_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gb, tb_, rtol=1e-9, atol=1e-12)


CONV = st.fixed_dictionaries({
    "n": st.integers(1, 2), "g": st.integers(1, 2), "cpg": st.integers(1, 2), "opg": st.integers(1, 2),
    "h": st.integers(3, 5), "w": st.integers(3, 5), "kh": st.integers(1, 3), "kw": st.integers(1, 3),
    "s": st.tuples(st.integers(1, 2), st.integers(1, 2)), "d": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "p": st.tuples(*[st.integers(0, 1)] * 4), "bias": st.booleans(), "batched": st.booleans(),
})


@FEW
@given(c=CONV, seed=seeds)
def test_conv2d(c: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = c["g"]
    x = rng.standard_normal((c["n"], g * c["cpg"], c["h"], c["w"]) if c["batched"] else (g * c["cpg"], c["h"], c["w"]))
    w = rng.standard_normal((g * c["opg"], c["cpg"], c["kh"], c["kw"]))
    arrays = [x, w] + ([rng.standard_normal(g * c["opg"])] if c["bias"] else [])
    attrs = dict(stride=list(c["s"]), pads=list(c["p"]), dilation=list(c["d"]), groups=g)
    eh, ew = c["d"][0] * (c["kh"] - 1) + 1, c["d"][1] * (c["kw"] - 1) + 1
    if eh > c["h"] + c["p"][0] + c["p"][2] or ew > c["w"] + c["p"][1] + c["p"][3]:
        return
    grads = check(lambda *v: ap("conv2d", list(v), **attrs), arrays, seed, rtol=1e-6, atol=1e-8)
    y = ap("conv2d", [F.array(a) for a in arrays], **attrs)
    ct = np.random.default_rng(seed).standard_normal(y.shape)
    pt, pl, pb, pr = c["p"]

    def tf(xx, ww, bb=None):
        xx = torch.nn.functional.pad(xx, (pl, pr, pt, pb))
        return torch.nn.functional.conv2d(xx, ww, bb, stride=c["s"], dilation=c["d"], groups=g)

    for mine, ref in zip(grads, _torch_grads(tf, arrays, ct)):
        np.testing.assert_allclose(mine, ref, rtol=1e-9, atol=1e-10)


def test_conv2d_trailing_pads_with_stride() -> None:
    # regression: the input gradient must not crop real columns when the right pad is unused
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 1, 3, 3)), rng.standard_normal((2, 1, 1, 2))
    attrs = dict(stride=[1, 2], pads=[0, 0, 1, 1], dilation=[1, 1], groups=1)
    gx, gw = check(lambda a, b: ap("conv2d", [a, b], **attrs), [x, w])
    y = ap("conv2d", [F.array(x), F.array(w)], **attrs)
    ct = np.random.default_rng(0).standard_normal(y.shape)
    tgx, tgw = _torch_grads(lambda a, b: torch.nn.functional.conv2d(torch.nn.functional.pad(a, (0, 1, 0, 1)), b,
                                                                    stride=(1, 2)), [x, w], ct)
    np.testing.assert_allclose(gx, tgx, rtol=1e-12)
    np.testing.assert_allclose(gw, tgw, rtol=1e-12)


@FEW
@given(c=CONV, op=st.tuples(st.integers(0, 1), st.integers(0, 1)), seed=seeds)
def test_conv2d_transpose(c: dict, op: tuple, seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = c["g"]
    s, d = c["s"], c["d"]
    op = [min(op[0], max(s[0], d[0]) - 1), min(op[1], max(s[1], d[1]) - 1)]
    x = rng.standard_normal((c["n"], g * c["cpg"], c["h"] - 1, c["w"] - 1) if c["batched"]
                            else (g * c["cpg"], c["h"] - 1, c["w"] - 1))
    w = rng.standard_normal((g * c["cpg"], c["opg"], c["kh"], c["kw"]))
    arrays = [x, w] + ([rng.standard_normal(g * c["opg"])] if c["bias"] else [])
    p = [min(v, c["kh"] - 1 if i % 2 == 0 else c["kw"] - 1) for i, v in enumerate(c["p"])]
    p = [p[0], p[1], p[0], p[1]]  # symmetric pads: torch's convention
    attrs = dict(stride=list(s), pads=p, dilation=list(d), groups=g, output_padding=op)
    grads = check(lambda *v: ap("conv2d_transpose", list(v), **attrs), arrays, seed, rtol=1e-6, atol=1e-8)
    y = ap("conv2d_transpose", [F.array(a) for a in arrays], **attrs)
    ct = np.random.default_rng(seed).standard_normal(y.shape)

    def tf(xx, ww, bb=None):
        return torch.nn.functional.conv_transpose2d(xx, ww, bb, stride=s, padding=(p[0], p[1]),
                                                    output_padding=op, groups=g, dilation=d)

    for mine, ref in zip(grads, _torch_grads(tf, arrays, ct)):
        np.testing.assert_allclose(mine, ref, rtol=1e-9, atol=1e-10)


@FEW
@given(c=CONV, oh=st.integers(1, 4), ow=st.integers(1, 4), seed=seeds)
def test_conv2d_backprop_filter(c: dict, oh: int, ow: int, seed: int) -> None:
    # dW = F(x, dy) is bilinear: both grads against finite differences and torch (double backward of conv2d)
    rng = np.random.default_rng(seed)
    g = c["g"]
    x = rng.standard_normal((c["n"], g * c["cpg"], c["h"], c["w"]))
    dy = rng.standard_normal((c["n"], g * c["opg"], oh, ow))
    attrs = dict(kernel=[c["kh"], c["kw"]], stride=list(c["s"]), pads=[c["p"][0], c["p"][1]],
                 dilation=list(c["d"]), groups=g)
    gx, gdy = check(lambda a, b: ap("conv2d_backprop_filter", [a, b], **attrs), [x, dy], seed, rtol=1e-6, atol=1e-8)
    ct = np.random.default_rng(seed).standard_normal((g * c["opg"], c["cpg"], c["kh"], c["kw"]))
    # torch: dW of conv2d over x zero-extended to the windows that dy covers
    (pt, pl), (sh, sw), (dh, dw) = attrs["pads"], c["s"], c["d"]
    ph = max(0, (oh - 1) * sh + dh * (c["kh"] - 1) + 1 - c["h"] - pt)
    pw = max(0, (ow - 1) * sw + dw * (c["kw"] - 1) + 1 - c["w"] - pl)

    def tf(xx, yy):
        xp = torch.nn.functional.pad(xx, (pl, pw, pt, ph))
        w = torch.zeros(ct.shape, dtype=torch.float64, requires_grad=True)
        y = torch.nn.functional.conv2d(xp, w, stride=c["s"], dilation=c["d"], groups=g)[:, :, :oh, :ow]
        return torch.autograd.grad(y, w, yy, create_graph=True)[0]

    tx, tdy = _torch_grads(tf, [x, dy], ct)
    np.testing.assert_allclose(gx, tx, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(gdy, tdy, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data(), seed=seeds)
def test_softmax_primitives(op: str, shape: list, data, seed: int) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    (g,) = check(lambda v: ap(op, [v], axis=axis), [x], seed)
    y = ap(op, [F.array(x)], axis=axis)
    ct = np.random.default_rng(seed).standard_normal(y.shape)
    tf = (lambda t: torch.softmax(t, axis)) if op == "softmax" else (lambda t: torch.log_softmax(t, axis))
    (tg,) = _torch_grads(tf, [x], ct)
    np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-12)
    check_second(lambda v: (ap(op, [v], axis=axis) ** 2).sum(), [x], seed)


@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data(), seed=seeds)
def test_layer_norm_primitive(shape: list, data, seed: int) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.random.default_rng(seed).standard_normal(shape) * 2
    (g,) = check(lambda v: ap("layer_norm", [v], axis=axis, eps=1e-3), [x], seed)
    y = ap("layer_norm", [F.array(x)], axis=axis, eps=1e-3)
    ct = np.random.default_rng(seed).standard_normal(y.shape)
    norm_shape = list(x.shape[axis % x.ndim:])
    (tg,) = _torch_grads(lambda t: torch.nn.functional.layer_norm(t, norm_shape, eps=1e-3), [x], ct)
    np.testing.assert_allclose(g, tg, rtol=1e-8, atol=1e-10)
    check_second(lambda v: (ap("layer_norm", [v], axis=axis, eps=1e-3) * F.array(ct)).sum() ** 2, [x], seed)


POOL = st.fixed_dictionaries({
    "k": st.tuples(st.integers(1, 3), st.integers(1, 3)), "s": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "pad": st.tuples(st.integers(0, 1), st.integers(0, 1)), "d": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "ceil": st.booleans(), "cip": st.booleans(), "batched": st.booleans(),
    "h": st.integers(3, 5), "w": st.integers(3, 5),
})


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@FEW
@given(c=POOL, seed=seeds)
def test_pools(op: str, c: dict, seed: int) -> None:
    k, s = list(c["k"]), list(c["s"])
    d = list(c["d"]) if op == "max_pool2d" else [1, 1]
    pad = [min(c["pad"][0], (d[0] * (k[0] - 1) + 1) // 2), min(c["pad"][1], (d[1] * (k[1] - 1) + 1) // 2)]
    pads = [pad[0], pad[1], pad[0], pad[1]]
    shape = (2, 2, c["h"], c["w"]) if c["batched"] else (2, c["h"], c["w"])
    x = np.random.default_rng(seed).standard_normal(shape)
    attrs = dict(kernel=k, stride=s, pads=pads, ceil_mode=c["ceil"])
    attrs.update(dilation=d) if op == "max_pool2d" else attrs.update(count_include_pad=c["cip"])
    try:
        y = ap(op, [F.array(x)], **attrs)
    except ValueError:
        return  # window larger than the padded input
    (g,) = check(lambda v: ap(op, [v], **attrs), [x], seed)
    ct = np.random.default_rng(seed).standard_normal(y.shape)
    if op == "max_pool2d":
        def tf(t):
            return torch.nn.functional.max_pool2d(t, k, s, pad, d, ceil_mode=c["ceil"])
    else:
        def tf(t):
            return torch.nn.functional.avg_pool2d(t, k, s, pad, ceil_mode=c["ceil"], count_include_pad=c["cip"])
    (tg,) = _torch_grads(tf, [x], ct)
    np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-10)
    if op == "max_pool2d":  # its backward primitive: linear in dy, piecewise constant in x
        gx, gdy = check(lambda a, b: ap("max_pool2d_grad", [a, b], **attrs), [x, ct], seed)
        assert not gx.any()
        dx_ct = np.random.default_rng(seed).standard_normal(x.shape)  # the cotangent check() used

        def tf2(t, u):
            return torch.autograd.grad(tf(t), t, u, create_graph=True)[0]

        _, tdy = _torch_grads(tf2, [x, ct], dx_ct)
        np.testing.assert_allclose(gdy, tdy, rtol=1e-9, atol=1e-10)


# ---- coverage ----------------------------------------------------------------------------------------

def test_every_primitive_has_a_rule_or_is_declared_non_differentiable() -> None:
    missing = [op for op in OP_TABLE if op not in RULES and op not in NON_DIFFERENTIABLE]
    assert not missing, f"primitives without a gradient rule or a non-differentiable entry: {missing}"
    assert not set(RULES) & set(NON_DIFFERENTIABLE)
    assert set(RULES) | set(NON_DIFFERENTIABLE) <= set(OP_TABLE)
    for op, outs in NON_DIFFERENTIABLE_OUTPUTS.items():  # e.g. sort/topk indices
        assert op in RULES and all(0 <= k < OP_TABLE[op].n_outputs for k in outs)


# ---- grad of grad: finite differences of the first gradient ------------------------------------------

def check_second(f: Callable, arrays: list, seed: int = 0, eps: float = 1e-5, rtol: float = 1e-5,
                 atol: float = 1e-7) -> None:
    """Hessian-vector products of scalar f: grad(<grad f, v>) vs (grad f(x + eps v) - grad f(x - eps v)) / 2eps."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    rng = np.random.default_rng(seed)
    vs = [rng.standard_normal(a.shape) for a in arrays]
    xs = _vars(arrays)
    gs = F.grad(f(*xs), xs)
    dot = sum(((g * F.array(v)).sum() for g, v in zip(gs, vs)), F.array(0.0))
    hv = F.grad(dot, xs)

    def grads_at(sign: float) -> list:
        ys = _vars([a + sign * eps * v for a, v in zip(arrays, vs)])
        return [np.asarray(g.read()) for g in F.grad(f(*ys), ys)]

    gp, gm = grads_at(1.0), grads_at(-1.0)
    for h, p, m in zip(hv, gp, gm):
        np.testing.assert_allclose(np.asarray(h.read()), (p - m) / (2 * eps), rtol=rtol, atol=atol)


def test_second_order_elementwise() -> None:
    x = np.random.default_rng(0).uniform(0.3, 2.0, (3, 2))
    y = np.random.default_rng(1).uniform(0.3, 2.0, (2,))
    check_second(lambda a, b: (F.tanh(a) * F.exp(b) + F.log(a) * a ** b + F.sigmoid(a * b) / b).sum(), [x, y])
    check_second(lambda a, b: (F.gelu(a) + F.softplus(b) * F.sqrt(a) + F.maximum(a, b) ** 2).sum(), [x, y])


def test_second_order_matmul() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2))
    check_second(lambda x, y: (F.tanh(F.matmul(x, y)) ** 2).sum(), [a, b])


def test_cumprod_with_zeros_against_torch() -> None:
    x = np.array([[2.0, 0.0, 3.0, 0.0, 5.0], [1.5, -2.0, 0.5, 4.0, 0.0], [0.0, 1.0, 2.0, 3.0, 4.0]])
    ct = np.random.default_rng(0).standard_normal(x.shape)
    (g,) = check(lambda v: F.cumprod(v, axis=1), [x])
    (tg,) = _torch_grads(lambda t: torch.cumprod(t, 1), [x], ct)
    np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-12)


def test_second_order_reductions() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 1.5, (3, 4))
    check_second(lambda x: (F.max(x * x, axis=1) * F.mean(x, axis=1) + F.prod(x, axis=0).sum()).sum(), [a])
    check_second(lambda x: (F.cumsum(x, axis=1) * F.cumprod(x, axis=0)).sum() + F.softmax(x, axis=1)[:, 0].sum(), [a])


def test_second_order_conv() -> None:
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((2, 2, 2, 2))
    check_second(lambda a, b: (F.tanh(ap("conv2d", [a, b], stride=[1, 1], pads=[1, 0, 0, 1], dilation=[1, 1],
                                             groups=1)) ** 2).sum(), [x, w])
    check_second(lambda a: (F.avg_pool2d(a * a, 2) + F.max_pool2d(a * a, 2)).sum(), [x])


def test_math_constants_used_in_rules() -> None:
    # erfinv's rule uses sqrt(pi)/2 exp(y^2); a point value against the closed form
    x = F.array(np.array([0.3]))
    x.requires_grad = True
    (g,) = F.grad(F.erfinv(x).sum(), [x])
    y = float(F.erfinv(F.array(np.array([0.3]))).read()[0])
    assert g.read()[0] == pytest.approx(math.sqrt(math.pi) / 2 * math.exp(y * y), rel=1e-12)


# ---- more torch references (fixed inputs) ---------------------------------------------------------------

_X = np.random.default_rng(11).standard_normal((2, 3, 4))
_I = np.array([2, 0, 2, 1])
_TA = np.random.default_rng(12).integers(0, 4, (2, 3, 5))

TORCH_CASES = {
    "cumsum": (lambda v: F.cumsum(v, axis=1), lambda t: torch.cumsum(t, 1)),
    "cumsum_reverse": (lambda v: ap("cumsum", [v], axis=2, exclusive=False, reverse=True),
                       lambda t: torch.flip(torch.cumsum(torch.flip(t, [2]), 2), [2])),
    "cumprod": (lambda v: F.cumprod(v, axis=2), lambda t: torch.cumprod(t, 2)),
    "gather": (lambda v: F.take(v, F.array(_I), axis=2), lambda t: torch.index_select(t, 2, torch.tensor(_I))),
    "take_along_axis": (lambda v: ap("take_along_axis", [v, F.array(_TA)], axis=2),
                        lambda t: torch.take_along_dim(t, torch.tensor(_TA), 2)),
    "sort": (lambda v: F.sort(v, axis=1), lambda t: torch.sort(t, 1).values),
    "topk": (lambda v: F.apply("topk", [v], k=2, axis=2, largest=True)[0], lambda t: torch.topk(t, 2, 2).values),
    "pad_reflect": (lambda v: ap("pad", [v], pads=[0, 0, 1, 2, 3, 1], mode="reflect", value=0.0),
                    lambda t: torch.nn.functional.pad(t, (3, 1, 1, 2), mode="reflect")),
    "pad_edge": (lambda v: ap("pad", [v], pads=[0, 0, 2, 2, 1, 3], mode="edge", value=0.0),
                 lambda t: torch.nn.functional.pad(t, (1, 3, 2, 2), mode="replicate")),
    "pad_wrap": (lambda v: ap("pad", [v], pads=[0, 0, 1, 0, 2, 3], mode="wrap", value=0.0),
                 lambda t: torch.nn.functional.pad(t, (2, 3, 1, 0), mode="circular")),
    "tile": (lambda v: ap("tile", [v], reps=[2, 1, 3]), lambda t: torch.tile(t, (2, 1, 3))),
    "flip_transpose": (lambda v: ap("transpose", [ap("flip", [v], axes=[0, 2])], perm=[2, 0, 1]),
                       lambda t: torch.flip(t, [0, 2]).permute(2, 0, 1)),
    "slice_contiguous": (lambda v: v[1:, -2:, :3] * 1.0, lambda t: t[1:, -2:, :3] * 1.0),
    "slice_steps": (lambda v: v[::-1, 1:, ::2], lambda t: torch.flip(t, [0])[:, 1:, ::2]),
    "softmax_logsumexp": (lambda v: F.softmax(v, axis=2) * F.logsumexp(v, axis=1, keepdims=True),
                          lambda t: torch.softmax(t, 2) * torch.logsumexp(t, 1, keepdim=True)),
}


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_against_torch(name: str) -> None:
    f, tf = TORCH_CASES[name]
    (x,) = _vars([_X])
    y = f(x)
    ct = np.random.default_rng(13).standard_normal(y.shape)
    (g,) = F.grad(y, [x], F.array(ct))
    (tg,) = _torch_grads(tf, [_X], ct)
    np.testing.assert_allclose(g.read(), tg, rtol=1e-10, atol=1e-12)
