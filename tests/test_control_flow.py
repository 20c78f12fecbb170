"""cond / while_loop / fori_loop / scan: eager, lazy and compiled agree with numpy, and gradients
through cond and scan match central finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest

import mnn_expr as F


def _fd_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in range(x.size):
        d = np.zeros_like(x)
        d.flat[i] = eps
        g.flat[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


def _grad(f, x: np.ndarray) -> np.ndarray:
    v = F.array(x)
    v.requires_grad = True
    (g,) = F.grad(f(v), [v])
    return np.asarray(g.read())


# ---- while_loop: Newton's iteration ----------------------------------------------------------------

def newton_sqrt(a: F.Var) -> F.Var:
    def body(s):
        x, it = s
        return (x - (x * x - a) / (2 * x), it + 1)

    def keep_going(s):
        x, it = s
        return F.logical_and(F.abs(x * x - a).max() > 1e-10, it < 50)

    x, _ = F.while_loop(keep_going, body, (F.ones_like(a), F.array(0)))
    return x


@pytest.mark.parametrize("lazy", [False, True])
def test_newton_while_loop(lazy):
    a = np.array([2.0, 9.0, 0.25, 1e4])
    with F.lazy_eval(lazy):
        got = newton_sqrt(F.array(a)).read()
    np.testing.assert_allclose(got, np.sqrt(a), rtol=1e-12)


def _ops(fn, *args) -> list:
    """The primitives of fn's traced graph, with the ops of control-flow bodies nested."""
    from mnn_nn.deploy import trace

    def ops_of(nodes):
        out = []
        for n in nodes:
            out.append(n.op)
            for v in n.attrs.values():
                if isinstance(v, F._native.SubGraph):
                    out.append([op for op, *_ in v.describe()["nodes"]])
        return out
    return ops_of(trace(fn, list(args)).nodes)


def test_while_loop_compiles_to_a_rolled_loop():
    a = np.array([2.0, 9.0, 0.25, 1e4])
    compiled = F.compile(newton_sqrt)
    np.testing.assert_allclose(compiled(F.array(a)).read(), np.sqrt(a), rtol=1e-12)
    np.testing.assert_allclose(compiled(F.array(a * 4)).read(), np.sqrt(a * 4), rtol=1e-12)
    assert compiled.traces == 1
    assert "loop" in _ops(newton_sqrt, F.array(a))


def test_grad_through_while_loop_names_the_alternative():
    a = F.array([2.0])
    a.requires_grad = True
    with pytest.raises(NotImplementedError, match="fori_loop"):
        F.compile(lambda v: F.grad(newton_sqrt(v).sum(), [v])[0])(a)


# ---- cond ------------------------------------------------------------------------------------------------

def piecewise(x: F.Var) -> F.Var:
    return F.cond(x.sum() > 0, lambda v: F.exp(v) * v, lambda v: F.sin(v) - v * v, x)


@pytest.mark.parametrize("x", [np.array([0.3, -0.1, 0.5]), np.array([-0.4, 0.1, -0.2])])
def test_cond_eager_lazy_compiled_and_numpy(x):
    want = np.exp(x) * x if x.sum() > 0 else np.sin(x) - x * x
    np.testing.assert_allclose(piecewise(F.array(x)).read(), want, rtol=1e-12)
    with F.lazy_eval(True):
        np.testing.assert_allclose(piecewise(F.array(x)).read(), want, rtol=1e-12)
    compiled = F.compile(piecewise)
    np.testing.assert_allclose(compiled(F.array(x)).read(), want, rtol=1e-12)
    np.testing.assert_allclose(compiled(F.array(-x)).read(),
                               np.exp(-x) * -x if -x.sum() > 0 else np.sin(-x) - x * x, rtol=1e-12)
    assert compiled.traces == 1  # one program serves both branches


@pytest.mark.parametrize("x", [np.array([0.3, -0.1, 0.5]), np.array([-0.4, 0.1, -0.2])])
def test_grad_through_cond_matches_finite_differences(x):
    def f(v):
        return (piecewise(v) ** 2).sum()

    def fn(a):
        return float(f(F.array(a)).item())

    np.testing.assert_allclose(_grad(f, x), _fd_grad(fn, x), rtol=1e-6, atol=1e-9)
    compiled_grad = F.compile(lambda v: F.grad(f(v), [v])[0])
    v = F.array(x)
    v.requires_grad = True
    np.testing.assert_allclose(compiled_grad(v).read(), _fd_grad(fn, x), rtol=1e-6, atol=1e-9)


def _grad_graph_ops(f, x: np.ndarray) -> list:
    """The primitives of the traced graph of grad(f) at x's shape (as F.compile builds it)."""
    from mnn_expr.executor import _tracing
    from mnn_expr.graph_capture import build_graph

    ph = F.placeholder(x.shape, "float64")
    ph.requires_grad = True
    with _tracing(), F.lazy_eval(True):
        g = F.grad(f(ph), [ph])[0]
    return [n.op for n in build_graph([g], ["g"], [ph], ["x"]).nodes]


def test_grad_through_cond_stays_an_if_op():
    def f(v):
        inner = lambda a: F.cond(a.sum() < 1.0, lambda b: b * b, lambda b: F.sin(b), a)  # noqa: E731
        return (F.cond(v.max() > 0, lambda a: inner(a) * 3.0, lambda a: F.exp(a), v) ** 2).sum()

    ops = _grad_graph_ops(f, np.zeros(3))
    assert ops.count("if") == 2, ops  # the forward if and its vjp (cond is not lowered to where)
    for x in (np.array([0.3, -0.1, 0.5]), np.array([0.9, 0.8, 0.1]), np.array([-0.4, -0.1, -0.2])):
        def fn(a):
            return float(f(F.array(a)).item())
        v = F.array(x)
        v.requires_grad = True
        got = F.compile(lambda v: F.grad(f(v), [v])[0])(v).read()
        np.testing.assert_allclose(got, _fd_grad(fn, x), rtol=1e-6, atol=1e-9)


def test_compiled_training_step_through_cond_matches_eager():
    import mnn_nn as nn
    import mnn_optim as optim

    def make():
        lin = nn.Linear(3, 2).double()
        return lin, optim.SGD(lin.parameters(), lr=0.1, momentum=0.5)

    (l1, o1), (l2, o2) = make(), make()
    l2.load_state_dict(l1.state_dict())

    def step_of(lin, opt):
        def step(x):
            y = F.cond(x.sum() > 0, lambda a: F.tanh(lin(a)) * 2.0, lambda a: lin(a * a) - 1.0, x)
            loss = (y ** 2).mean()
            opt.step(loss)
            return loss
        return step

    eager, compiled = step_of(l1, o1), F.compile(step_of(l2, o2), state=[l2, o2])
    rng = np.random.default_rng(1)
    for k in range(6):
        x = rng.standard_normal((4, 3)) * (1 if k % 2 else -1)
        assert compiled(F.array(x)).item() == pytest.approx(eager(F.array(x)).item(), rel=1e-12)
    np.testing.assert_allclose(l2.weight.read(), l1.weight.read(), rtol=1e-12)


def test_cond_branches_must_agree_inside_compile():
    with pytest.raises(TypeError, match="same structure"):
        F.compile(lambda x: F.cond(x.sum() > 0, lambda v: (v, v), lambda v: v, x))(F.ones(2))
    with pytest.raises(TypeError, match="differs"):
        F.compile(lambda x: F.cond(x.sum() > 0, lambda v: v, lambda v: v.sum(), x))(F.ones(2))


def test_python_predicates_pick_one_branch():
    calls = []
    F.cond(True, lambda: calls.append("t"), lambda: calls.append("f"))
    assert calls == ["t"]


# ---- scan: a recurrent net, its gradients, a cond inside ---------------------------------------------------

def rnn_loss(w: F.Var, xs: F.Var, h0: F.Var) -> F.Var:
    def cell(h, x):
        h = F.tanh(F.matmul(h, w) + x)
        return h, h.sum()

    h, ys = F.scan(cell, h0, xs)
    return (h * h).sum() + (ys * ys).sum()


def test_scan_rnn_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3)) * 0.5
    xs = rng.standard_normal((5, 2, 3))
    h0 = rng.standard_normal((2, 3))

    def fw(a):
        return float(rnn_loss(F.array(a), F.array(xs), F.array(h0)).item())

    def fx(a):
        return float(rnn_loss(F.array(w), F.array(a), F.array(h0)).item())

    np.testing.assert_allclose(_grad(lambda v: rnn_loss(v, F.array(xs), F.array(h0)), w), _fd_grad(fw, w),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(_grad(lambda v: rnn_loss(F.array(w), v, F.array(h0)), xs), _fd_grad(fx, xs),
                               rtol=1e-6, atol=1e-8)
    compiled = F.compile(rnn_loss)
    assert compiled(F.array(w), F.array(xs), F.array(h0)).item() == pytest.approx(fw(w), rel=1e-12)


@pytest.fixture
def rolled(monkeypatch):
    """Loops stay rolled even where gradients are wanted (the default unrolls small ones)."""
    from mnn_expr import control_flow
    monkeypatch.setattr(control_flow, "UNROLL_OPS", 0)


def test_grads_through_small_loops_unroll_by_default():
    w = np.random.default_rng(2).standard_normal((3, 3)) * 0.5
    ops = _grad_graph_ops(lambda v: F.fori_loop(0, 4, lambda i, a: F.tanh(F.matmul(a, v)), v).sum(), w)
    assert "loop" not in ops and ops.count("tanh") == 4, ops


def test_grads_through_scan_and_fori_loop_stay_rolled_loops(rolled):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 3)) * 0.5
    xs = rng.standard_normal((6, 2, 3))
    h0 = rng.standard_normal((2, 3))

    def rnn_with_cond(v, xs_):  # cond inside the scan body: its vjp is an if inside the reverse loop
        def cell(h, x):
            h = F.cond(x.sum() > 0, lambda a: F.tanh(F.matmul(a, v) + x), lambda a: F.sin(a) * 0.5 + x, h)
            return h, (h * h).sum()
        h, ys = F.scan(cell, F.array(h0), xs_)
        return (h * h).sum() + ys.sum()

    def power_iteration(v):
        return F.fori_loop(0, 4, lambda i, a: F.tanh(F.matmul(a, v)) * (1.0 + 0.1 * i), F.array(h0)).sum()

    for f, x, wrt in ((lambda v: rnn_loss(v, F.array(xs), F.array(h0)), w, "w"),
                      (lambda v: rnn_loss(F.array(w), v, F.array(h0)), xs, "xs"),
                      (lambda v: rnn_with_cond(v, F.array(xs)), w, "w, cond inside"),
                      (lambda v: rnn_with_cond(F.array(w), v), xs, "xs, cond inside"),
                      (power_iteration, w, "fori_loop")):
        ops = _grad_graph_ops(f, x)
        assert ops.count("loop") >= 2 and "tanh" not in ops, (wrt, ops)  # (recomputed) forward and reverse: rolled
        v = F.array(x)
        v.requires_grad = True
        got = F.compile(lambda v, f=f: F.grad(f(v), [v])[0])(v).read()
        np.testing.assert_allclose(got, _fd_grad(lambda a, f=f: float(f(F.array(a)).item()), x), rtol=1e-6,
                                   atol=1e-8, err_msg=wrt)


def test_compiled_rnn_training_step_with_a_rolled_loop_matches_eager(rolled):
    import mnn_nn as nn
    import mnn_optim as optim

    def make():
        cell, head = nn.Linear(4, 4).double(), nn.Linear(4, 1).double()
        return cell, head, optim.Adam([*cell.parameters(), *head.parameters()], lr=0.05)

    (c1, h1, o1), (c2, h2, o2) = make(), make()
    c2.load_state_dict(c1.state_dict())
    h2.load_state_dict(h1.state_dict())

    def step_of(cell, head, opt):
        def step(xs, target):
            h, _ = F.scan(lambda h, x: (F.tanh(cell(h) + x), None), F.zeros((2, 4), dtype="float64"), xs)
            loss = ((head(h) - target) ** 2).mean()
            opt.step(loss)
            return loss
        return step

    eager, compiled = step_of(c1, h1, o1), F.compile(step_of(c2, h2, o2), state=[c2, h2, o2])
    rng = np.random.default_rng(3)
    for _ in range(5):
        xs, t = rng.standard_normal((7, 2, 4)), rng.standard_normal((2, 1))
        assert compiled(F.array(xs), F.array(t)).item() == pytest.approx(eager(F.array(xs), F.array(t)).item(),
                                                                          rel=1e-10)
    np.testing.assert_allclose(c2.weight.read(), c1.weight.read(), rtol=1e-10)


def test_scan_with_cond_inside_eager_and_compiled():
    def f(xs):
        def step(c, x):
            c = F.cond(x.sum() > 0, lambda a, b: a + b, lambda a, b: a - b * 2, c, x)
            return c, c * 1.0

        return F.scan(step, F.zeros(2, dtype="float64"), xs)

    xs = np.array([[1.0, 2.0], [-3.0, 0.5], [0.25, 0.25], [-1.0, -1.0]])
    c, ref = np.zeros(2), []
    for x in xs:
        c = c + x if x.sum() > 0 else c - 2 * x
        ref.append(c)
    for run in (f, F.compile(f)):
        carry, ys = run(F.array(xs))
        np.testing.assert_allclose(carry.read(), c)
        np.testing.assert_allclose(ys.read(), np.array(ref))


def test_scan_structures_and_errors():
    carry, ys = F.scan(lambda c, x: (c + x["a"], {"sq": x["a"] ** 2, "b": x["b"]}), F.array(0.0),
                       {"a": F.array([1.0, 2.0]), "b": F.array([[1], [2]])})
    assert carry.item() == 3.0 and ys["sq"].tolist() == [1.0, 4.0] and ys["b"].tolist() == [[1], [2]]
    carry, ys = F.scan(lambda c, _: (c * 2, None), F.array(1.0), length=3)
    assert carry.item() == 8.0 and ys is None
    with pytest.raises(ValueError, match="leading length"):
        F.scan(lambda c, x: (c, x), F.array(0.0), [F.ones(2), F.ones(3)])
    with pytest.raises(ValueError, match="pass xs or length"):
        F.scan(lambda c, x: (c, x), F.array(0.0))


def test_fori_loop_inside_compile():
    def body(x):
        return (F.fori_loop(0, 5, lambda i, acc: acc * x + i, F.zeros_like(x)))
    assert "loop" in _ops(body, F.array([0.5, 2.0], dtype="float64"))  # rolled: one body, run 5 times
    assert "loop" not in _ops(body, F.array([0.5, 2.0]))  # float32 acc + int64 i would change the dtype: unrolled
    f = F.compile(body)
    x = np.array([0.5, 2.0])
    acc = np.zeros(2)
    for i in range(5):
        acc = acc * x + i
    np.testing.assert_allclose(f(F.array(x)).read(), acc)
    with pytest.raises(NotImplementedError, match="int"):
        F.compile(lambda x, n: F.fori_loop(0, n, lambda i, a: a + 1, x))(F.zeros(1), F.array(3))


def test_scan_with_cond_inside_stays_rolled_and_nested():
    def f(xs):
        def step(c, x):
            c = F.cond(x.sum() > 0, lambda a, b: a + b, lambda a, b: a - b * 2, c, x)
            return c, c * 1.0
        return F.scan(step, F.zeros(2, dtype="float64"), xs)
    ops = _ops(f, F.array(np.ones((4, 2))))
    assert "loop" in ops and any(isinstance(o, list) and "if" in o for o in ops), ops


def test_control_flow_exports_and_runs_without_python(tmp_path):
    import subprocess

    from mnn_nn.deploy import export, load, runtime_cli

    w = F.array(np.random.default_rng(0).standard_normal((3, 3)) * 0.5, dtype="float32")

    def model(xs, h0):
        def cell(h, x):
            h = F.tanh(F.matmul(h, w) + x)
            h = F.cond(h.sum() > 0, lambda a: a * 0.5, lambda a: a - 0.1, h)
            return h, h.sum()
        h, ys = F.scan(cell, h0, xs)
        n, _ = F.while_loop(lambda s: s[1] < 3.0, lambda s: (s[0] + 1, s[1] + F.abs(h).sum() + 0.5),
                            (F.array(0), F.array(0.0)))
        return h, ys, n

    rng = np.random.default_rng(1)
    xs = rng.standard_normal((6, 2, 3)).astype(np.float32)
    h0 = rng.standard_normal((2, 3)).astype(np.float32)
    want = [v.numpy() for v in model(F.array(xs), F.array(h0))]  # eager: plain Python loops
    path = str(tmp_path / "cf.mnnx")
    export(model, [F.array(xs), F.array(h0)], path)
    got = [v.numpy() for v in load(path).run(xs, h0)]
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)
    np.save(tmp_path / "xs.npy", xs)
    np.save(tmp_path / "h0.npy", h0)
    out = subprocess.run([runtime_cli(), path, str(tmp_path / "xs.npy"), str(tmp_path / "h0.npy"), "--save",
                          str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    np.testing.assert_allclose(np.load(tmp_path / "output1.npy"), want[1], rtol=1e-6, atol=1e-6)
    assert int(np.load(tmp_path / "output2.npy")) == int(want[2])
