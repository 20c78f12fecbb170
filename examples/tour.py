#!/usr/bin/env python
"""A short tour of mnn_expr: NumPy-style code run eagerly and lazily, checked against numpy.

Run from the repository root (after building the native module)::

    python examples/tour.py

Each step prints one line and checks its results against numpy with
``np.testing.assert_allclose``; the tour ends with ``tour OK: N checks passed``
or, when anything did not match or is not implemented yet, lists the failed
steps and exits with status 1.  It takes a few seconds.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run the checkout's mnn_expr

import numpy as np  # noqa: E402

import mnn_expr as F  # noqa: E402

rng = np.random.default_rng(0)


# --------------------------------------------------------------------------- checking

class MissingOp(RuntimeError):
    """The tour needs an mnn_expr function or Var method that this build lacks."""


class Checks:
    """Counts comparisons with numpy; every comparison raises AssertionError on a mismatch."""

    def __init__(self) -> None:
        self.count = 0

    def close(self, what: str, got: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-6) -> None:
        """``got`` (a Var or array) has ``expected``'s shape and values within tolerance."""
        arr = np.asarray(got)
        exp = np.asarray(expected)
        assert arr.shape == exp.shape, f"{what}: shape {arr.shape}, numpy gives {exp.shape}"
        np.testing.assert_allclose(arr, exp, rtol=rtol, atol=atol, err_msg=what)
        self.count += 1

    def equal(self, what: str, got: Any, expected: Any) -> None:
        """Exact equality of plain Python values (shapes, dtypes, counts)."""
        assert got == expected, f"{what}: got {got!r}, expected {expected!r}"
        self.count += 1


check = Checks()


def need(*names: str) -> Callable[..., Any]:
    """The first of ``F.<name>`` that exists (for ops whose final name is not settled yet)."""
    for name in names:
        fn = getattr(F, name, None)
        if fn is not None:
            return fn
    raise MissingOp(f"none of {', '.join('F.' + n for n in names)} is in this mnn_expr build")


def missing_message(exc: BaseException) -> str | None:
    """A short 'not implemented yet' message when ``exc`` is the symptom of a missing op/method."""
    text = str(exc)
    if isinstance(exc, MissingOp):
        return text
    if isinstance(exc, AttributeError) and ("module 'mnn_expr' has no attribute" in text
                                            or "'Var' object has no attribute" in text):
        name = text.rsplit(" ", 1)[-1].strip("'")
        owner = "F" if "module" in text else "Var"
        return f"{owner}.{name} is not in this mnn_expr build"
    if isinstance(exc, TypeError) and "'Var'" in text:
        for phrase, what in (("for @", "a @ b (Var.__matmul__)"),
                             ("not subscriptable", "x[...] (Var.__getitem__)"),
                             ("item assignment", "x[...] = v (Var.__setitem__)")):
            if phrase in text:
                return f"{what} is not in this mnn_expr build"
    return None


STEPS: list[tuple[str, Callable[[], str]]] = []


def step(title: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    """Registers a tour step; the step returns a one-line summary of what it showed."""

    def register(fn: Callable[[], str]) -> Callable[[], str]:
        STEPS.append((title, fn))
        return fn

    return register


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


# --------------------------------------------------------------------------- NumPy-style functions
# Written once against a module ``xp``: the same source runs on numpy (xp=np) and on mnn_expr (xp=F).

def softmax(xp: Any, x: Any, axis: int = -1) -> Any:
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def layer_norm(xp: Any, x: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Any:
    mu = xp.mean(x, axis=-1, keepdims=True)
    d = x - mu
    var = xp.mean(d * d, axis=-1, keepdims=True)
    return d / xp.sqrt(var + eps) * gamma + beta


def attention_block(xp: Any, x: Any, w: Any, b: Any, gamma: Any, beta: Any) -> Any:
    """A tiny transformer-ish block: projection, tanh, layer norm, self-attention weights."""
    h = xp.tanh(xp.matmul(x, w) + b)
    h = layer_norm(xp, h, gamma, beta)
    scores = xp.matmul(h, xp.transpose(h)) / np.sqrt(h.shape[-1])
    return xp.matmul(softmax(xp, scores), h)


# --------------------------------------------------------------------------- the steps

@step("creation")
def creation() -> str:
    x = F.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    check.equal("F.array(float list).dtype", x.dtype, F.float32)  # Python floats -> float32 (our default)
    check.close("F.array(float list)", x, [[1, 2, 3], [4, 5, 6]])
    i = F.array([1, 2, 3])
    check.equal("F.array(int list).dtype", i.dtype, F.int64)
    n = np.arange(12, dtype=np.float32).reshape(3, 4)
    v = F.asarray(n)
    check.equal("F.asarray(ndarray).shape", v.shape, (3, 4))
    check.close("F.asarray(ndarray)", v, n)
    check.close("F.zeros", F.zeros((2, 3)), np.zeros((2, 3)))
    check.close("F.ones", F.ones(4), np.ones(4))
    check.close("F.arange", F.arange(5), np.arange(5))
    check.close("F.linspace", F.linspace(0, 1, 5), np.linspace(0, 1, 5))
    check.close("F.full", F.full((2, 2), 7.0), np.full((2, 2), 7.0))
    check.equal("Var -> list", (x * 2).tolist(), [[2.0, 4.0, 6.0], [8.0, 10.0, 12.0]])
    return "Vars from lists and numpy arrays; zeros/ones/arange/linspace/full; float32 default"


@step("elementwise math")
def elementwise() -> str:
    xn, yn = randn(4, 5), randn(4, 5)
    x, y = F.array(xn), F.array(yn)
    check.close("exp(-x*x/2)", F.exp(-x * x / 2), np.exp(-xn * xn / 2))
    check.close("sqrt(|x|) + tanh(y)", F.sqrt(F.abs(x)) + F.tanh(y), np.sqrt(np.abs(xn)) + np.tanh(yn))
    check.close("x ** 2 - 3 * y", x ** 2 - 3 * y, xn ** 2 - 3 * yn, rtol=1e-5, atol=1e-5)
    check.close("maximum(x, y)", F.maximum(x, y), np.maximum(xn, yn))
    check.close("where(x > 0, x, 0.1 * x)", F.where(x > 0, x, 0.1 * x), np.where(xn > 0, xn, 0.1 * xn))
    check.close("x > y (bool)", x > y, xn > yn)
    kn = np.array([7, -7, 9])
    k = F.array(kn)
    check.close("floor_divide, mod (ints)", (k // 2) * 10 + k % 2, (kn // 2) * 10 + kn % 2)
    return "operators, exp/sqrt/tanh/abs, maximum, where, comparisons, integer // and %"


@step("broadcasting")
def broadcasting() -> str:
    col, row = randn(3, 1), randn(4)
    got = F.array(col) + F.array(row)
    check.close("(3,1) + (4,)", got, col + row)
    a, b = randn(2, 1, 4), randn(3, 1)
    check.close("(2,1,4) * (3,1)", F.array(a) * F.array(b), a * b)
    check.close("scalar - Var / scalar", 1.5 - F.array(a) / 4, 1.5 - a / 4)
    return "(3,1)+(4,) -> (3,4); (2,1,4)*(3,1) -> (2,3,4); Python scalars"


@step("reductions")
def reductions() -> str:
    xn = randn(3, 4, 5)
    x = F.array(xn)
    check.close("sum(x)", F.sum(x), np.sum(xn), rtol=1e-4, atol=1e-4)
    check.close("mean(x, axis=0)", F.mean(x, axis=0), np.mean(xn, axis=0))
    check.close("max(x, axis=-1, keepdims=True)", F.max(x, axis=-1, keepdims=True),
                np.max(xn, axis=-1, keepdims=True))
    check.close("min(x, axis=(0, 2))", F.min(x, axis=(0, 2)), np.min(xn, axis=(0, 2)))
    check.close("x.sum(axis=1)", x.sum(axis=1), xn.sum(axis=1), rtol=1e-5, atol=1e-5)
    check.close("argmax(x, axis=1)", F.argmax(x, axis=1), np.argmax(xn, axis=1))
    return "sum/mean/max/min over all, one, several and negative axes; keepdims; argmax; x.sum()"


@step("slicing and indexing")
def indexing() -> str:
    xn = np.arange(24, dtype=np.float32).reshape(4, 6)
    x = F.array(xn)
    check.close("x[1:, ::2]", x[1:, ::2], xn[1:, ::2])
    check.close("x[..., 0]", x[..., 0], xn[..., 0])
    check.close("x[-1]", x[-1], xn[-1])
    check.close("x[None, :, 1]", x[None, :, 1], xn[None, :, 1])
    check.close("x[::-1, 2:5]", x[::-1, 2:5], xn[::-1, 2:5])
    idx = np.array([3, 0, 2])
    check.close("x[int Var]", x[F.array(idx)], xn[idx])
    check.close("x[:, [1, 4]]", x[:, [1, 4]], xn[:, [1, 4]])
    # Indexed update is functional: it rebinds x; Vars computed from the old x keep their values.
    before = x * 1
    x[0, :] = 5.0
    xn[0, :] = 5.0
    x[1:3, 1] = F.array([7.0, 8.0])
    xn[1:3, 1] = [7.0, 8.0]
    check.close("x[0, :] = 5; x[1:3, 1] = [7, 8]", x, xn)
    check.close("earlier Var unchanged by the update", before, np.arange(24, dtype=np.float32).reshape(4, 6))
    return "basic slices, negative steps, None, Ellipsis, integer-array indexing, x[i] = v"


@step("matmul")
def matmul() -> str:
    an, bn, vn = randn(3, 4), randn(4, 5), randn(4)
    a, b = F.array(an), F.array(bn)
    check.close("F.matmul(a, b)", F.matmul(a, b), an @ bn, rtol=1e-5, atol=1e-5)
    check.close("a @ b", a @ b, an @ bn, rtol=1e-5, atol=1e-5)
    check.close("matrix @ vector", a @ F.array(vn), an @ vn, rtol=1e-5, atol=1e-5)
    batch = randn(2, 3, 4)
    check.close("batched (2,3,4) @ (4,5)", F.matmul(F.array(batch), b), batch @ bn, rtol=1e-5, atol=1e-5)
    return "2-d, matrix-vector and batched matmul, the @ operator"


@step("softmax and layer norm")
def numpy_style() -> str:
    xn, g, beta = randn(4, 8), randn(8), randn(8)
    check.close("softmax", softmax(F, F.array(xn)), softmax(np, xn))
    check.close("softmax rows sum to 1", F.sum(softmax(F, F.array(xn)), axis=-1), np.ones(4), rtol=1e-5)
    got = layer_norm(F, F.array(xn), F.array(g), F.array(beta))
    check.close("layer_norm", got, layer_norm(np, xn, g, beta), rtol=1e-4, atol=1e-5)
    return "the same NumPy-style source runs on numpy (xp=np) and on mnn_expr (xp=F)"


@step("eager then lazy")
def eager_and_lazy() -> str:
    xn, wn, bn, gn, betan = randn(6, 8), randn(8, 8) / 3, randn(8), randn(8), randn(8)
    expected = attention_block(np, xn, wn, bn, gn, betan)
    args = [F.array(a) for a in (xn, wn, bn, gn, betan)]

    eager = attention_block(F, *args)  # every op runs as it is called
    check.close("eager attention_block", eager, expected, rtol=1e-4, atol=1e-5)

    def lookups() -> int:
        s = F.plan_cache_stats()
        return s["hits"] + s["misses"]

    with F.lazy_eval(True):
        before = lookups()
        y = attention_block(F, *args)  # recorded, not computed
        check.equal("nothing ran while building", lookups(), before)
        check.equal("y is a recorded op until read", y.op_type != "Const", True)
        check.close("lazy attention_block (first read)", y, expected, rtol=1e-4, atol=1e-5)
        first = F.plan_cache_stats()
        check.equal("first read: one native call (one plan lookup)", lookups() - before, 1)

        y2 = attention_block(F, *args)  # the same structure again: the cached plan is reused
        check.close("lazy attention_block (second read)", y2, expected, rtol=1e-4, atol=1e-5)
        second = F.plan_cache_stats()
        check.equal("second read: a plan-cache hit", second["hits"] - first["hits"], 1)
        check.equal("second read: no new plan", second["misses"], first["misses"])
    check.close("eager and lazy agree", y, eager, rtol=1e-5, atol=1e-6)
    return (f"lazy: ops recorded, one native call per read; second read hit the plan cache "
            f"(hits {first['hits']} -> {second['hits']})")


@step("placeholder fed twice")
def placeholder() -> str:
    x = F.placeholder((4, 8), F.float32, name="x")
    y = softmax(F, x * 2.0)
    check.equal("shape known before any value", y.shape, (4, 8))
    for k in range(2):
        xn = randn(4, 8)
        x.write(xn)
        check.close(f"feed {k + 1}", y, softmax(np, xn * 2.0))
    return "y = softmax(2x) built on a placeholder; x.write() twice, y re-read each time"


@step("conv2d + max pool")
def conv_pool() -> str:
    conv2d = need("conv2d")
    max_pool = need("max_pool2d", "max_pool")
    xn, wn, bn = randn(2, 3, 8, 8), randn(4, 3, 3, 3), randn(4)
    y = F.relu(conv2d(F.array(xn), F.array(wn), F.array(bn), stride=(1, 1), padding=(1, 1)))
    p = max_pool(y, [2, 2], [2, 2])

    # numpy reference: 3x3 windows of the zero-padded input, contracted with the weights
    padded = np.pad(xn, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))  # (2,3,8,8,3,3)
    ref = np.maximum(np.einsum("ncijkl,ockl->noij", win, wn) + bn[None, :, None, None], 0)
    ref_pool = ref.reshape(2, 4, 4, 2, 4, 2).max(axis=(3, 5))
    check.close("relu(conv2d(x, w, b, padding=1))", y, ref, rtol=1e-4, atol=1e-4)
    check.close("max pool 2x2", p, ref_pool, rtol=1e-4, atol=1e-4)
    return "(2,3,8,8) * (4,3,3,3) -> relu -> 2x2 max pool -> (2,4,4,4)"


# --------------------------------------------------------------------------- driver

def main() -> int:
    F.set_thread_number(2)
    start = time.perf_counter()
    failed: list[str] = []
    width = max(len(title) for title, _ in STEPS)
    for title, fn in STEPS:
        before = check.count
        try:
            summary = fn()
        except Exception as exc:  # noqa: BLE001  (report every step, then fail)
            missing = missing_message(exc)
            n = check.count - before
            if missing is not None:
                print(f"MISSING {title:<{width}}  after {n} checks: {missing} (not implemented yet?)")
            else:
                print(f"FAIL    {title:<{width}}  after {n} checks: {type(exc).__name__}")
                traceback.print_exc(limit=-3, file=sys.stdout)
            failed.append(title)
            continue
        print(f"ok      {title:<{width}}  {check.count - before:2d} checks  {summary}")
    elapsed = time.perf_counter() - start
    if failed:
        print(f"\ntour FAILED: {len(failed)} of {len(STEPS)} steps did not pass ({'; '.join(failed)}); "
              f"{check.count} checks passed in {elapsed:.1f} s")
        return 1
    print(f"\ntour OK: {check.count} checks passed in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
