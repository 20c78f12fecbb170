"""Lazy evaluation (DESIGN §3-4): same results as eager, computed only when read, history
dropped after evaluation, plans cached by structure, placeholders, multi-output reads.

The random-DAG property test builds small expression graphs over 1-3 input arrays
(broadcast shapes, mixed float32/float64/int32, weak Python scalars, shared
sub-expressions), evaluates them eagerly and lazily, and checks both against numpy
(same dtype; values within a tolerance scaled by the magnitudes involved) and against
each other (bit for bit: the modes share kernels).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mnn_expr as F
from tests.op_records import broadcast_shapes


def _fonly(fn):
    """Float-only functions compute integer inputs in float32 (documented; numpy: float64)."""
    return lambda x: fn(x.astype(np.float32) if x.dtype.kind in "iub" else x)


UNARY = {
    "negative": np.negative,
    "abs": np.abs,
    "square": np.square,
    "sin": _fonly(np.sin),
    "cos": _fonly(np.cos),
    "tanh": _fonly(np.tanh),
}
BINARY = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "maximum": np.maximum,
    "minimum": np.minimum,
}
SCALARS = (2, -1, 0.5, 1.5)


def _ref_scalar(fn, a: np.ndarray, c: Any) -> np.ndarray:
    # NEP 50 weak scalars; an integer array meeting a Python float gives float32 (documented).
    if isinstance(c, float) and a.dtype.kind in "iub":
        a = a.astype(np.float32)
    return fn(a, c)


@st.composite
def dags(draw: Any) -> dict:
    n_in = draw(st.integers(1, 3))
    shapes = draw(broadcast_shapes(n_in, max_dims=3))
    dtypes = [draw(st.sampled_from(["float32", "float32", "float64", "int32"])) for _ in range(n_in)]
    nodes = []
    for k in range(draw(st.integers(1, 8))):
        avail = n_in + k
        ref = st.integers(0, avail - 1)
        kind = draw(st.sampled_from(["unary", "binary", "binary", "scalar"]))
        if kind == "unary":
            nodes.append(("unary", draw(st.sampled_from(sorted(UNARY))), draw(ref)))
        elif kind == "binary":
            nodes.append(("binary", draw(st.sampled_from(sorted(BINARY))), draw(ref), draw(ref)))
        else:
            nodes.append(
                (
                    "scalar",
                    draw(st.sampled_from(["add", "multiply", "subtract"])),
                    draw(ref),
                    draw(st.sampled_from(SCALARS)),
                    draw(st.booleans()),
                )
            )
    last = n_in + len(nodes) - 1
    outs = sorted(set(draw(st.lists(st.integers(n_in, last), max_size=3))) | {last})
    return {
        "shapes": shapes,
        "dtypes": dtypes,
        "nodes": nodes,
        "outs": outs,
        "seed": draw(st.integers(0, 2**31)),
    }


def _inputs(g: dict) -> list[np.ndarray]:
    rng = np.random.default_rng(g["seed"])
    out = []
    for shp, dt in zip(g["shapes"], g["dtypes"]):
        if dt == "int32":
            out.append(rng.integers(-3, 4, shp).astype(np.int32))
        else:
            out.append(rng.uniform(-1, 1, shp).astype(dt))
    return out


def _run_ours(g: dict, arrays: list[np.ndarray]) -> list[F.Var]:
    vals: list[Any] = [F.array(a) for a in arrays]
    fns = {**{n: F.UNARY_FUNCS[n] for n in UNARY}, **{n: F.BINARY_FUNCS[n] for n in BINARY}}
    for node in g["nodes"]:
        if node[0] == "unary":
            vals.append(fns[node[1]](vals[node[2]]))
        elif node[0] == "binary":
            vals.append(fns[node[1]](vals[node[2]], vals[node[3]]))
        else:
            _, name, i, c, left = node
            x = vals[i]
            ops = {"add": (x + c, c + x), "multiply": (x * c, c * x), "subtract": (x - c, c - x)}
            vals.append(ops[name][0 if left else 1])
    return [vals[i] for i in g["outs"]]


def _eps(a: np.ndarray) -> float:
    return float(np.finfo(a.dtype).eps) if a.dtype.kind == "f" else 0.0


def _run_numpy(g: dict, arrays: list[np.ndarray]) -> tuple[list[np.ndarray], list[float], list[float]]:
    """Reference values and, per value, the largest magnitude on its path and the coarsest float
    precision on its path (for the tolerance)."""
    vals = list(arrays)
    scale = [float(np.max(np.abs(a), initial=0.0)) for a in arrays]
    eps = [_eps(a) for a in arrays]
    with np.errstate(all="ignore"):
        for node in g["nodes"]:
            if node[0] == "unary":
                v, s, e = UNARY[node[1]](vals[node[2]]), scale[node[2]], eps[node[2]]
            elif node[0] == "binary":
                i, j = node[2], node[3]
                v, s, e = BINARY[node[1]](vals[i], vals[j]), max(scale[i], scale[j]), max(eps[i], eps[j])
            else:
                _, name, i, c, left = node
                fn = BINARY[name]
                v = (
                    _ref_scalar(fn, vals[i], c)
                    if left
                    else _ref_scalar(lambda a, b, fn=fn: fn(b, a), vals[i], c)
                )
                s, e = max(scale[i], abs(c)), eps[i]
            v = np.asarray(v)
            vals.append(v)
            scale.append(max(s, float(np.max(np.abs(v), initial=0.0))))
            eps.append(max(e, _eps(v)))
    return [vals[i] for i in g["outs"]], [scale[i] for i in g["outs"]], [eps[i] for i in g["outs"]]


@given(g=dags())
def test_lazy_equals_eager_equals_numpy(g: dict) -> None:
    arrays = _inputs(g)
    refs, scales, epss = _run_numpy(g, arrays)
    with F.lazy_eval(False):
        eager = _run_ours(g, arrays)
    with F.lazy_eval(True):
        lazy = _run_ours(g, arrays)
        assert all(not v._computed for v in lazy), "lazy mode computed an op before it was read"
        for v, r in zip(lazy, refs):  # shapes and dtypes are known without computing
            assert v.shape == r.shape and v.dtype == r.dtype.name, (v.shape, v.dtype, r.shape, r.dtype)
        F.evaluate(*lazy)
    for e, lz, r, s, eps in zip(eager, lazy, refs, scales, epss):
        assert e._computed and lz._computed and not lz._has_history
        ea, la = e.read(), lz.read()
        assert ea.dtype == r.dtype and la.dtype == r.dtype, (ea.dtype, la.dtype, r.dtype)
        np.testing.assert_array_equal(la, ea, err_msg="lazy and eager results differ")
        np.testing.assert_allclose(
            ea, r, rtol=64 * eps, atol=64 * eps * max(s, 1.0), err_msg="differs from numpy"
        )


@given(g=dags())
def test_reading_outputs_one_by_one_matches_evaluate(g: dict) -> None:
    arrays = _inputs(g)
    refs = _run_numpy(g, arrays)[0]
    with F.lazy_eval(True):
        together = _run_ours(g, arrays)
        F.evaluate(*together)
        one_by_one = _run_ours(g, arrays)
        got = [v.read() for v in reversed(one_by_one)][::-1]
    for a, t, r in zip(got, together, refs):
        np.testing.assert_array_equal(a, t.read())
        assert a.shape == r.shape


# ---- switching modes --------------------------------------------------------------


def test_lazy_eval_as_a_call_and_as_a_context_manager() -> None:
    assert not F.is_lazy(), "eager is the default"
    try:
        F.lazy_eval(True)
        assert F.is_lazy()
        x = F.ones(3) + 1.0
        assert not x._computed
        F.lazy_eval(False)
        assert not F.is_lazy()
        y = F.ones(3) + 1.0
        assert y._computed
    finally:
        F.lazy_eval(False)
    with F.lazy_eval(True):
        assert F.is_lazy()
        with F.lazy_eval(False):
            assert not F.is_lazy()
        assert F.is_lazy()
        with F.eager():
            assert not F.is_lazy()
    assert not F.is_lazy()
    with F.lazy():
        assert F.is_lazy()
    assert not F.is_lazy()


def test_context_manager_restores_the_mode_on_error() -> None:
    with pytest.raises(ZeroDivisionError):
        with F.lazy_eval(True):
            1 / 0  # noqa: B018
    assert not F.is_lazy()
    with F.lazy_eval(True):
        with pytest.raises(ValueError):
            with F.lazy_eval(False):
                F.ones(2) + F.ones(3)
        assert F.is_lazy()
    assert not F.is_lazy()


# ---- not computed until read; history dropped ----------------------------------------


def test_ops_are_computed_only_when_read() -> None:
    x = F.array(np.array([1.0, 2.0, 3.0], np.float32))
    with F.lazy_eval(True):
        t = x * 2.0
        y = t + 1.0
        assert not t._computed and not y._computed
        assert y._has_history and y.op_type == "add"
        assert (
            y.shape == (3,) and y.dtype == F.float32 and y.size == 3 and y.ndim == 1
        )  # known without computing
        assert not y._computed
        np.testing.assert_array_equal(y.read(), [3.0, 5.0, 7.0])
        assert y._computed
        assert not y._has_history and y.inputs == [], "an evaluated Var keeps history nobody needs"
        np.testing.assert_array_equal(t.read(), [2.0, 4.0, 6.0])  # an intermediate can still be read later


@pytest.mark.parametrize(
    "reader",
    [
        lambda v: v.read(),
        lambda v: v.numpy(),
        lambda v: np.asarray(v),
        lambda v: repr(v),
        lambda v: str(v),
        lambda v: v.tolist(),
        lambda v: float(v.astype("float64").read().sum()),
    ],
    ids=["read", "numpy", "asarray", "repr", "str", "tolist", "astype"],
)
def test_every_reader_computes(reader) -> None:
    with F.lazy_eval(True):
        y = F.array(np.array([1.5, -2.0], np.float32)) * 2.0
        assert not y._computed
        reader(y)
        if not y._computed:  # astype builds a new lazy Var; reading that one computes y's value too
            y.read()
        assert y._computed
        np.testing.assert_array_equal(y.read(), [3.0, -4.0])


def test_item_and_bool_compute_a_lazy_value() -> None:
    with F.lazy_eval(True):
        y = F.array(np.array([2.5], np.float32)) * 2.0
        assert y.item() == 5.0
        z = F.array(np.array([1.0], np.float32)) - 1.0
        assert not bool(z)


def test_eager_ops_on_pending_lazy_values_are_recorded() -> None:
    with F.lazy_eval(True):
        y = F.ones(3) * 3.0
    z = y + 1.0  # eager mode, but its input has no value yet
    assert not z._computed
    np.testing.assert_array_equal(z.read(), [4.0, 4.0, 4.0])


def test_deep_lazy_chains_evaluate_and_free_without_recursion() -> None:
    """200,000-op chains: evaluating, dropping unevaluated, and a requires_grad history all work without
    overflowing the native stack (run in a subprocess so a crash fails this test only)."""
    code = textwrap.dedent(
        """
        import mnn_expr as F
        N = 200_000
        with F.lazy_eval(True):
            y = F.ones(2)
            for _ in range(N):
                y = y + 1.0
            assert y.read().tolist() == [N + 1.0, N + 1.0]
            y = F.ones(2)
            for _ in range(N):
                y = y + 1.0
            del y  # dropped without evaluation
        x = F.ones(2)
        x.requires_grad = True
        y = x
        for _ in range(N):
            y = y * 1.0
        assert y._has_history
        del y, x
        print("ok")
        """
    )
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env=env,
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, (
        f"exit status {proc.returncode} (negative = killed by a signal, -11 = segfault)\n"
        f"{proc.stderr[-2000:]}"
    )


# ---- plan cache --------------------------------------------------------------------


def _graph(a: Any, b: Any, c: float = 2.0) -> F.Var:
    return F.tanh(a * b + a) * c - b


def _graph_ref(a: np.ndarray, b: np.ndarray, c: float = 2.0) -> np.ndarray:
    return np.tanh(a * b + a) * np.float32(c) - b


def test_plan_cache_hits_for_the_same_structure_with_new_data() -> None:
    rng = np.random.default_rng(1)
    F.clear_plan_cache()
    assert F.plan_cache_stats() == {"hits": 0, "misses": 0, "size": 0}
    for i in range(3):
        a, b = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
        with F.lazy_eval(True):
            y = _graph(F.array(a), F.array(b))
            got = y.read()
        np.testing.assert_allclose(got, _graph_ref(a, b), rtol=1e-6, atol=1e-6)
        stats = F.plan_cache_stats()
        assert stats == {"hits": i, "misses": 1, "size": 1}, stats


def test_plan_cache_misses_for_other_shapes_dtypes_and_attributes() -> None:
    F.clear_plan_cache()
    with F.lazy_eval(True):
        _graph(F.ones((4, 5)), F.ones(5)).read()
        _graph(F.ones((4, 6)), F.ones(6)).read()  # other shapes
        assert F.plan_cache_stats()["misses"] == 2
        _graph(F.ones((4, 5), "float64"), F.ones(5, "float64")).read()  # other dtypes
        assert F.plan_cache_stats()["misses"] == 3
        a = F.cast(F.ones(3) * 2.5, "int32").read()
        b = F.cast(F.ones(3) * 2.5, "float64").read()  # same wiring, other attribute
        assert a.dtype == np.int32 and b.dtype == np.float64
        np.testing.assert_array_equal(a, [2, 2, 2])
        np.testing.assert_array_equal(b, [2.5, 2.5, 2.5])
        assert F.plan_cache_stats()["misses"] == 5
        assert F.plan_cache_stats()["hits"] == 0


def test_plan_cache_reuse_uses_the_new_constants() -> None:
    """Python scalars become constant inputs: the same structure with another scalar hits the cache and
    must compute with the new value."""
    F.clear_plan_cache()
    a, b = np.ones((2, 3), np.float32), np.full(3, 0.5, np.float32)
    with F.lazy_eval(True):
        for c in (2.0, 3.0, -1.0):
            got = _graph(F.array(a), F.array(b), c).read()
            np.testing.assert_allclose(got, _graph_ref(a, b, c), rtol=1e-6)
    assert F.plan_cache_stats()["size"] == 1 and F.plan_cache_stats()["hits"] == 2


def test_plan_cache_respects_which_values_are_read() -> None:
    """Two graphs of one structure, read at different targets: a plan made when ``t`` was an
    intermediate (freed after use) must not be reused when ``t`` is itself read."""
    x = np.array([-0.5, 2.0], np.float32)
    F.clear_plan_cache()
    with F.lazy_eval(True):
        t = F.abs(F.array(x))
        u = F.negative(t)
        F.evaluate(u)
        np.testing.assert_array_equal(u.read(), -np.abs(x))
        t = F.abs(F.array(x))
        u = F.negative(t)
        F.evaluate(t, u)
        assert t._computed, "a Var passed to evaluate() has no value afterwards"
        np.testing.assert_array_equal(t.read(), np.abs(x))
        np.testing.assert_array_equal(u.read(), -np.abs(x))


def test_eager_mode_does_not_use_the_plan_cache() -> None:
    F.clear_plan_cache()
    _graph(F.ones((4, 5)), F.ones(5)).read()
    assert F.plan_cache_stats() == {"hits": 0, "misses": 0, "size": 0}


# ---- placeholders ------------------------------------------------------------------


def test_reading_an_unwritten_placeholder_names_it() -> None:
    p = F.placeholder([2, 3], name="images")
    y = p * 2.0 + 1.0
    assert not y._computed and y.shape == (2, 3) and y.dtype == F.float32
    with pytest.raises(ValueError, match="images"):
        y.read()
    with pytest.raises(ValueError, match="images"):
        p.read()
    with pytest.raises(ValueError, match="images"):
        F.evaluate(y)
    assert "images" in repr(p)  # printing an unwritten placeholder describes it instead of failing


def test_write_then_read_and_rewrite_for_a_new_graph() -> None:
    p = F.placeholder([2, 3], F.float32, name="x")
    y = p * 2.0
    d1 = np.arange(6, dtype=np.float32).reshape(2, 3)
    p.write(d1)
    np.testing.assert_array_equal(p.read(), d1)
    np.testing.assert_array_equal(y.read(), d1 * 2)
    d2 = -d1
    p.write(d2)
    np.testing.assert_array_equal(p.read(), d2)
    np.testing.assert_array_equal((p * 2.0).read(), d2 * 2, err_msg="a new graph must see the new value")
    with F.lazy_eval(True):
        z = p + 1.0
        assert not z._computed
        np.testing.assert_array_equal(z.read(), d2 + 1)


def test_write_checks_size_and_converts_dtype() -> None:
    p = F.placeholder([2, 2], "int32", name="ids")
    p.write([1.9, 2.0, 3.0, -4.0])  # same number of elements: reshaped; values converted to int32
    np.testing.assert_array_equal(p.read(), np.array([[1, 2], [3, -4]], np.int32))
    assert p.read().dtype == np.int32
    with pytest.raises(ValueError, match="ids|write"):
        p.write(np.zeros(5))
    c = F.ones(2)
    with pytest.raises(TypeError, match="placeholder"):
        c.write([1.0, 2.0])


# ---- multi-output reads -----------------------------------------------------------------


def test_evaluate_computes_several_outputs_in_one_plan() -> None:
    x = np.linspace(-1, 1, 7, dtype=np.float32)
    F.clear_plan_cache()
    with F.lazy_eval(True):
        a = F.array(x) * 2.0
        b = a + 1.0
        c = F.sin(b) * a
        F.evaluate(a, c)
        assert a._computed and c._computed
        assert F.plan_cache_stats()["misses"] == 1, "evaluate(a, c) should run one plan"
        np.testing.assert_array_equal(a.read(), x * np.float32(2))
        np.testing.assert_allclose(
            c.read(), np.sin(x * np.float32(2) + np.float32(1)) * (x * np.float32(2)), rtol=1e-6
        )
        np.testing.assert_allclose(b.read(), x * np.float32(2) + np.float32(1))
    F.evaluate()  # nothing to do
    F.evaluate(a, a, c)  # already computed, repeated: fine
