"""Eager (and lazy) control flow records the same if/loop ops that tracing builds.

cond / fori_loop / scan / while_loop run their Python functions directly in eager mode, and
their results are the outputs of one ``if``/``loop`` node holding those values (when they keep
history: they require gradients or depend on a placeholder).  Checked against numpy, central
finite differences (float64) and torch: values, gradients through the node, the graph a save
holds (the other branch runs after reloading), and that long loops keep no per-step history.

Like tracing, an eager loop whose gradients are wanted records unrolled ops while its unrolled
graph stays under ``control_flow.UNROLL_OPS``; most tests here set it to 0 so that their short
loops record the loop node."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import mnn_expr as F
from mnn_expr import control_flow
from tests.test_control_flow import _fd_grad


@pytest.fixture(autouse=True)
def rolled(monkeypatch):
    """Short loops with gradients record the loop node (as tracing does for long ones)."""
    monkeypatch.setattr(control_flow, "UNROLL_OPS", 0)


def _var(a: np.ndarray, grad: bool = True) -> F.Var:
    v = F.array(np.asarray(a, np.float64))
    v.requires_grad = grad
    return v


def _history_ops(*outs: F.Var) -> list:
    """The ops of the nodes reachable from ``outs`` through their recorded history."""
    ops, seen, stack = [], set(), list(outs)
    while stack:
        v = stack.pop()
        if not v._has_history or v._node_id in seen:
            continue
        seen.add(v._node_id)
        ops.append(v._op)
        stack.extend(v._inputs)
    return ops


@pytest.fixture(autouse=True)
def _no_fallback_warnings():
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*could not be traced")
        yield


# ---- cond ------------------------------------------------------------------------------------------------

def _piecewise(x: F.Var, w: F.Var) -> F.Var:
    return F.cond(x.sum() > 0, lambda v: F.exp(v) * w, lambda v: F.sin(v) - v * v, x)


def _piecewise_np(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.exp(x) * w if x.sum() > 0 else np.sin(x) - x * x


@pytest.mark.parametrize("x", [np.array([0.3, -0.1, 0.5]), np.array([-0.4, 0.1, -0.2])])
def test_eager_cond_is_an_if_node_with_the_direct_values(x):
    w = np.array([1.5, -0.5, 2.0])
    y = _piecewise(_var(x), _var(w))
    np.testing.assert_allclose(y.read(), _piecewise_np(x, w), rtol=1e-12)
    assert y._op == "if"
    assert _history_ops(y).count("if") == 1
    assert not {"exp", "sin"} & set(_history_ops(y))  # the branch ops live in the node's bodies only
    plain = _piecewise(F.array(x), F.array(w))  # nothing keeps history: a plain value, as any eager op's
    np.testing.assert_allclose(plain.read(), _piecewise_np(x, w), rtol=1e-12)
    assert not plain._has_history


def test_eager_cond_runs_the_branch_taken_directly():
    seen = []

    def taken(v):
        seen.append(v._computed)  # the direct run sees concrete values; its trace sees placeholders
        return v * 2.0

    x = _var([1.0, 2.0])
    y = F.cond(x.sum() > 0, taken, lambda v: v, x)
    assert seen[0] is True and y.tolist() == [2.0, 4.0]


@pytest.mark.parametrize("x", [np.array([0.3, -0.1, 0.5]), np.array([-0.4, 0.1, -0.2])])
def test_grad_through_eager_cond_matches_finite_differences_and_torch(x):
    import torch

    w = np.array([1.5, -0.5, 2.0])
    xv, wv = _var(x), _var(w)
    gx, gw = F.grad((_piecewise(xv, wv) ** 2).sum(), [xv, wv])
    np.testing.assert_allclose(gx.read(), _fd_grad(lambda a: (_piecewise_np(a, w) ** 2).sum(), x), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gw.read(), _fd_grad(lambda b: (_piecewise_np(x, b) ** 2).sum(), w), rtol=1e-6, atol=1e-9)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.exp(tx) * tw if tx.sum() > 0 else torch.sin(tx) - tx * tx
    (ty ** 2).sum().backward()
    np.testing.assert_allclose(gx.read(), tx.grad.numpy(), rtol=1e-10)
    want_w = tw.grad.numpy() if tw.grad is not None else np.zeros(3)  # (the branch taken may not read w)
    np.testing.assert_allclose(gw.read(), want_w, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("compiled", [False, True])
def test_grad_through_a_branch_that_does_not_read_the_input(compiled):
    # the if's vjp has zeros for a branch whose result does not depend on the input (it used to raise)
    def g(v):
        y = F.cond(v.sum() > 0, lambda a: a * a, lambda a: F.zeros_like(a) + 1.0, v)
        return F.grad(y.sum(), [v])[0]
    fn = F.compile(g) if compiled else g
    for x in (np.array([1.0, 2.0]), np.array([-1.0, -2.0])):
        got = fn(_var(x)).read()
        np.testing.assert_allclose(got, _fd_grad(lambda a: (a * a).sum() if a.sum() > 0 else 2.0, x), atol=1e-6)


def test_saved_eager_cond_runs_the_other_branch_after_reload(tmp_path):
    x = F.placeholder([3], "float64", name="x")
    y = F.cond(x.sum() > 0, lambda v: F.exp(v), lambda v: -v * 2.0, x)  # reads an unwritten placeholder: lazy
    y.name = "y"
    assert y._op == "if"
    path = os.path.join(tmp_path, "cond.mnnx")
    F.save([y], path)
    m = F.load_as_dict(path)
    for a in (np.array([1.0, 2.0, -0.5]), np.array([-1.0, -2.0, 0.5])):
        m["x"].write(a)
        np.testing.assert_allclose(m["y"].read(), np.exp(a) if a.sum() > 0 else -2 * a, rtol=1e-12)


def test_saved_eager_fori_loop_is_one_loop_op(tmp_path):
    from mnn_nn.deploy import graph_of

    x = F.placeholder([2], "float64", name="x")
    y = F.fori_loop(0, 4, lambda i, a: a * 2.0 + i, x)
    y.name = "y"
    assert [n.op for n in graph_of([y]).nodes] == ["loop"]
    path = os.path.join(tmp_path, "loop.mnnx")
    F.save([y], path)
    m = F.load_as_dict(path)
    m["x"].write(np.array([1.0, -3.0]))
    want = np.array([1.0, -3.0])
    for i in range(4):
        want = want * 2.0 + i
    np.testing.assert_allclose(m["y"].read(), want, rtol=1e-12)


def test_written_placeholder_rewrite_recomputes_through_the_if():
    x = F.placeholder([2], "float64", name="x")
    x.write(np.array([1.0, 2.0]))
    y = F.cond(x.sum() > 0, lambda v: F.exp(v), lambda v: -v * 2.0, x)
    np.testing.assert_allclose(y.read(), np.exp([1.0, 2.0]), rtol=1e-12)  # the direct run's value
    x.write(np.array([-1.0, -3.0]))  # the predicate flips: the recorded if runs the other branch
    np.testing.assert_allclose(y.read(), [2.0, 6.0], rtol=1e-12)


# ---- fori_loop / scan / while_loop --------------------------------------------------------------------

def _fori_np(x: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    for i in range(n):
        x = np.tanh(x @ w) + 0.1 * i
    return x


def test_eager_fori_loop_is_a_loop_node_and_its_grad_matches_finite_differences():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(3), rng.standard_normal((3, 3)) * 0.5
    xv, wv = _var(x), _var(w)
    y = F.fori_loop(0, 6, lambda i, a: F.tanh(F.matmul(a, wv)) + i * 0.1, xv)
    np.testing.assert_allclose(y.read(), _fori_np(x, w, 6), rtol=1e-12)
    assert y._op == "loop" and _history_ops(y).count("tanh") == 0
    gx, gw = F.grad((y * y).sum(), [xv, wv])
    np.testing.assert_allclose(gx.read(), _fd_grad(lambda a: (_fori_np(a, w, 6) ** 2).sum(), x), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gw.read(), _fd_grad(lambda b: (_fori_np(x, b, 6) ** 2).sum(), w), rtol=1e-6, atol=1e-9)


def _rnn_np(w, xs, h0):
    h, ys = h0, []
    for x in xs:
        h = np.tanh(h @ w + x)
        ys.append(h.sum())
    return (h * h).sum() + (np.array(ys) ** 2).sum()


def test_grad_through_eager_scan_matches_finite_differences_and_torch():
    import torch

    rng = np.random.default_rng(1)
    w, xs, h0 = rng.standard_normal((3, 3)) * 0.5, rng.standard_normal((5, 2, 3)), rng.standard_normal((2, 3))
    wv, xv, hv = _var(w), _var(xs), _var(h0)

    def cell(h, x):
        h = F.tanh(F.matmul(h, wv) + x)
        return h, h.sum()
    h, ys = F.scan(cell, hv, xv)
    assert h._op == "loop" and ys._op == "loop" and ys.shape == (5,)
    loss = (h * h).sum() + (ys * ys).sum()
    np.testing.assert_allclose(loss.item(), _rnn_np(w, xs, h0), rtol=1e-12)
    gw, gx, gh = F.grad(loss, [wv, xv, hv])
    np.testing.assert_allclose(gw.read(), _fd_grad(lambda b: _rnn_np(b, xs, h0), w), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gx.read(), _fd_grad(lambda b: _rnn_np(w, b, h0), xs), rtol=1e-6, atol=1e-9)
    tw, tx, th = (torch.tensor(a, requires_grad=True) for a in (w, xs, h0))
    hh, tys = th, []
    for t in range(5):
        hh = torch.tanh(hh @ tw + tx[t])
        tys.append(hh.sum())
    ((hh * hh).sum() + (torch.stack(tys) ** 2).sum()).backward()
    for got, want in ((gw, tw), (gx, tx), (gh, th)):
        np.testing.assert_allclose(got.read(), want.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_eager_cond_inside_scan_records_one_loop_and_its_grad_matches_finite_differences():
    rng = np.random.default_rng(2)
    w, xs = rng.standard_normal(3), rng.standard_normal((6, 3))

    def run(wv, xv, np_mode=False):
        if np_mode:
            c = np.zeros(3)
            for x in xv:
                c = c + (np.exp(x * wv) if x.sum() > 0 else -x * wv * wv)
            return (c ** 2).sum()

        def step(c, x):
            return c + F.cond(x.sum() > 0, lambda a: F.exp(a * wv), lambda a: -a * wv * wv, x), None
        c, _ = F.scan(step, F.zeros(3, "float64"), xv)
        return c
    wv, xv = _var(w), _var(xs)
    c = run(wv, xv)
    assert c._op == "loop" and _history_ops(c).count("if") == 0  # the cond lives in the loop's body
    body = c._attrs["body"].describe()
    assert "if" in [op for op, *_ in body["nodes"]]
    np.testing.assert_allclose((c ** 2).sum().item(), run(w, xs, True), rtol=1e-12)
    (gw,) = F.grad((c ** 2).sum(), [wv])
    np.testing.assert_allclose(gw.read(), _fd_grad(lambda b: run(b, xs, True), w), rtol=1e-6, atol=1e-9)


def test_eager_while_loop_is_a_loop_node_and_its_grad_names_the_alternatives():
    a = _var([2.0, 9.0, 0.25])
    x, it = F.while_loop(lambda s: F.logical_and(F.abs(s[0] * s[0] - a).max() > 1e-12, s[1] < 50),
                         lambda s: (s[0] - (s[0] * s[0] - a) / (2 * s[0]), s[1] + 1), (F.ones_like(a), F.array(0)))
    np.testing.assert_allclose(x.read(), np.sqrt([2.0, 9.0, 0.25]), rtol=1e-12)
    assert x._op == "loop" and it._op == "loop" and 0 < it.item() < 50
    with pytest.raises(NotImplementedError, match="fori_loop.*scan"):
        F.grad(x.sum(), [a])


def test_long_eager_loops_keep_no_per_step_history():
    w = _var(np.eye(4) * 0.999)
    x0 = _var(np.linspace(0.1, 0.4, 4))
    # (long enough that tracing keeps them rolled where gradients are wanted: > UNROLL_OPS unrolled)
    y = F.fori_loop(0, 3000, lambda i, a: F.matmul(a, w) * 1.0001, x0)
    want = np.linspace(0.1, 0.4, 4)
    for _ in range(3000):
        want = want @ (np.eye(4) * 0.999) * 1.0001
    np.testing.assert_allclose(y.read(), want, rtol=1e-10)
    assert len(_history_ops(y)) <= 3  # the loop node (and what made its inputs), not 3000 matmuls
    h, ys = F.scan(lambda c, x: (c * w[0, 0] + x, c.sum()), x0, F.ones((1500, 4), "float64"))
    assert len(_history_ops(h, ys)) <= 4
    (g,) = F.grad(y.sum(), [x0])
    np.testing.assert_allclose(g.read(), np.full(4, (0.999 * 1.0001) ** 3000), rtol=1e-10)


def test_short_eager_loops_with_gradients_record_what_tracing_builds(monkeypatch):
    """Where gradients are wanted, tracing unrolls a loop whose unrolled graph stays under
    UNROLL_OPS (faster); an eager one records the same unrolled ops, gradients unchanged."""
    monkeypatch.setattr(control_flow, "UNROLL_OPS", 4096)
    w = _var(np.eye(3) * 0.5)
    x0 = _var([0.1, 0.2, 0.3])
    y = F.fori_loop(0, 5, lambda i, a: F.matmul(a, w) + 1.0, x0)
    assert y._op != "loop"
    want = np.array([0.1, 0.2, 0.3])
    for _ in range(5):
        want = want @ (np.eye(3) * 0.5) + 1.0
    np.testing.assert_allclose(y.read(), want, rtol=1e-12)
    np.testing.assert_allclose(F.grad(y.sum(), [x0])[0].read(), np.full(3, 0.5 ** 5), rtol=1e-12)


def test_untraceable_bodies_fall_back_to_the_ops_they_ran():
    x = _var([0.5, -1.5])

    def reads_a_value(v):
        return v * float(v.sum().item())  # needs concrete values: cannot become a body
    with pytest.warns(UserWarning, match="could not be traced"):
        y = F.cond(x.sum() < 0, reads_a_value, lambda v: v, x)
    assert y._op != "if"
    # the ops it ran: v * s with s a Python float (a constant), so d sum / dv = s = -1
    np.testing.assert_allclose(F.grad(y.sum(), [x])[0].read(), [-1.0, -1.0], rtol=1e-12)
    with pytest.warns(UserWarning, match="could not be traced"):
        z = F.fori_loop(0, 3, lambda i, a: a * float(a.sum().item()), x)
    assert z._op != "loop"


def test_random_draws_fall_back_so_gradients_see_the_numbers_drawn():
    # a node's gradient would run its branch again (drawing another mask): such control flow records the ops it ran
    x = _var(np.ones(64))
    with pytest.warns(UserWarning, match="random"):
        y = F.cond(x.sum() > 0, lambda v: v * (F.random.uniform(size=(64,)) > 0.5).astype("float64"), lambda v: v, x)
    assert y._op != "if"
    np.testing.assert_array_equal(F.grad(y.sum(), [x])[0].read(), y.read())  # the mask the values used
    with pytest.warns(UserWarning, match="random"):
        h, _ = F.scan(lambda c, t: (c * (F.random.uniform(size=(64,)) > 0.2).astype("float64"), None), x, length=2)
    np.testing.assert_array_equal(F.grad(h.sum(), [x])[0].read(), h.read())


def test_lazy_mode_records_lazy_nodes():
    w = np.array([[0.5, 0.1], [0.2, 0.3]])
    with F.lazy_eval(True):
        x = F.array([1.0, -2.0]).astype("float64")
        y = F.cond(x.sum() > 0, lambda v: v * 2.0, lambda v: v - 1.0, x)
        z = F.fori_loop(0, 3, lambda i, a: F.matmul(a, F.array(w)), x)
        assert y._op == "if" and not y._computed and z._op == "loop"
        np.testing.assert_allclose(y.read(), [0.0, -3.0])
        np.testing.assert_allclose(z.read(), np.array([1.0, -2.0]) @ w @ w @ w, rtol=1e-12)
