"""mnn_optim against torch.optim: trajectories, parameter groups, schedulers, clipping, state dicts."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import mnn_expr as F
import mnn_optim as optim
from mnn_optim import lr_scheduler as ours_sched

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,)]
STEPS = 20
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _data(dtype, seed=0, steps=STEPS):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return init, grads


def _trainable(a):
    v = F.array(np.array(a))
    v.fix_as_trainable()
    return v


def _torch_run(cls, kwargs, init, grads, groups=None):
    ps = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    if groups is not None:
        opt = cls([{"params": [ps[i] for i in idx], **hp} for idx, hp in groups], foreach=False, **kwargs)
    else:
        opt = cls(ps, foreach=False, **kwargs)
    traj = []
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = torch.tensor(g)
        opt.step()
        traj.append([p.detach().numpy().copy() for p in ps])
    return traj


def _ours_run(cls, kwargs, init, grads, groups=None, lazy=False):
    ps = [_trainable(a) for a in init]
    if groups is not None:
        opt = cls([{"params": [ps[i] for i in idx], **hp} for idx, hp in groups], **kwargs)
    else:
        opt = cls(ps, **kwargs)
    order = [i for idx, _ in groups for i in idx] if groups is not None else list(range(len(ps)))
    traj = []
    with F.lazy_eval(lazy):
        for gs in grads:
            opt.apply([gs[i] for i in order])
            traj.append([p.read().copy() for p in ps])
    return traj, ps, opt


def _assert_traj(ours, ref, dtype):
    for step, (a, b) in enumerate(zip(ours, ref)):
        for x, y in zip(a, b):
            assert x.dtype == y.dtype
            np.testing.assert_allclose(x, y, err_msg=f"step {step}", **TOL[dtype])


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.5, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, eps=1e-3)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_trajectory_matches_torch(name, kwargs, dtype):
    init, grads = _data(dtype)
    ref = _torch_run(getattr(torch.optim, name), kwargs, init, grads)
    ours, ps, _ = _ours_run(getattr(optim, name), kwargs, init, grads)
    _assert_traj(ours, ref, dtype)
    for p in ps:
        assert p.requires_grad and p.op_type == "Trainable" and len(p.inputs) == 0


@pytest.mark.parametrize("name,kwargs", [CASES[3], CASES[9], CASES[11], CASES[15], CASES[17]])
def test_trajectory_lazy_matches_torch(name, kwargs):
    init, grads = _data(np.float64, seed=1)
    ref = _torch_run(getattr(torch.optim, name), kwargs, init, grads)
    ours, ps, _ = _ours_run(getattr(optim, name), kwargs, init, grads, lazy=True)
    _assert_traj(ours, ref, np.float64)
    assert all(p.requires_grad and len(p.inputs) == 0 for p in ps)


def test_quadratic_loss_trajectory():
    """Gradients of 0.5*|A p - b|^2 computed from each side's own parameters."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 4))
    b = rng.standard_normal(6)
    p0 = rng.standard_normal(4)
    tp = torch.nn.Parameter(torch.tensor(p0))
    topt = torch.optim.Adam([tp], lr=0.05, foreach=False)
    w = _trainable(p0)
    opt = optim.Adam([w], lr=0.05)
    for _ in range(STEPS):
        tp.grad = torch.tensor(a.T @ (a @ tp.detach().numpy() - b))
        topt.step()
        opt.apply([a.T @ (a @ w.read() - b)])
        np.testing.assert_allclose(w.read(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,defaults,group_hp", [
    ("SGD", dict(lr=0.1, momentum=0.9), [dict(lr=0.01), dict(nesterov=True, weight_decay=0.1)]),
    ("Adam", dict(lr=0.01), [dict(lr=0.001, betas=(0.5, 0.6)), dict(amsgrad=True)]),
    ("RMSprop", dict(lr=0.01), [dict(centered=True), dict(lr=0.05, momentum=0.3)]),
])
def test_param_groups_match_torch(name, defaults, group_hp):
    init, grads = _data(np.float64, seed=2)
    groups = [([1], group_hp[0]), ([0], group_hp[1])]
    ref = _torch_run(getattr(torch.optim, name), defaults, init, grads, groups=groups)
    ours, _, opt = _ours_run(getattr(optim, name), defaults, init, grads, groups=groups)
    _assert_traj(ours, ref, np.float64)
    assert opt.param_groups[0]["lr"] == group_hp[0].get("lr", defaults["lr"])


@pytest.mark.parametrize("name,kwargs", [CASES[2], CASES[9], CASES[15], CASES[17]])
def test_state_dict_round_trip_continues_trajectory(name, kwargs):
    init, grads = _data(np.float64, seed=4)
    ref = _torch_run(getattr(torch.optim, name), kwargs, init, grads)
    half = STEPS // 2
    ours, ps, opt = _ours_run(getattr(optim, name), kwargs, init, grads[:half])
    sd = pickle.loads(pickle.dumps(opt.state_dict()))
    assert all(isinstance(v, (np.ndarray, int)) for s in sd["state"].values() for v in s.values())
    ps2 = [_trainable(p.read()) for p in ps]
    opt2 = getattr(optim, name)(ps2, lr=123.0)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    for gs in grads[half:]:
        opt2.apply(gs)
        ours.append([p.read().copy() for p in ps2])
    _assert_traj(ours, ref, np.float64)
    # the state dict is a snapshot: later steps do not change it
    sd2 = opt2.state_dict()
    assert set(sd2["state"]) == set(sd["state"])


def test_load_state_dict_errors():
    p = _trainable(np.zeros(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.apply([np.ones(3)])
    sd = opt.state_dict()
    q = _trainable(np.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        optim.SGD([q], lr=0.1, momentum=0.9).load_state_dict(sd)
    with pytest.raises(ValueError, match="groups"):
        optim.SGD([{"params": [p]}, {"params": [q]}], lr=0.1).load_state_dict(sd)


def test_apply_forms_and_rebinding():
    p = _trainable(np.array([1.0, 2.0]))
    q = _trainable(np.array([3.0]))
    old = p * 1.0  # computed from the old value: keeps it
    opt = optim.SGD([p, q], lr=0.5)
    handle = p
    opt.apply([(p, np.array([1.0, 1.0])), (q, None)])
    assert handle is p
    np.testing.assert_allclose(p.read(), [0.5, 1.5])
    np.testing.assert_allclose(q.read(), [3.0])  # None gradient: skipped
    np.testing.assert_allclose(old.read(), [1.0, 2.0])
    opt.apply([F.array(np.array([1.0, 1.0])), np.array([2.0])])
    np.testing.assert_allclose(p.read(), [0.0, 1.0])
    np.testing.assert_allclose(q.read(), [2.0])
    opt.apply({1: np.array([-2.0])})
    np.testing.assert_allclose(p.read(), [0.0, 1.0])
    np.testing.assert_allclose(q.read(), [3.0])
    with pytest.raises(KeyError, match="names no parameter"):
        opt.apply({2: np.array([1.0])})
    assert p.dtype == F.float64 and p.requires_grad
    with pytest.raises(ValueError, match="2 parameters"):
        opt.apply([np.ones(2)])
    with pytest.raises(ValueError, match="shape"):
        opt.apply([np.ones(3), np.ones(1)])


def test_module_like_and_errors():
    class M:
        def __init__(self):
            self.w = _trainable(np.ones((2, 2), np.float32))

        def parameters(self):
            return [self.w]

    m = M()
    opt = optim.SGD(m, lr=0.1)
    assert opt.parameters()[0] is m.w
    with pytest.raises(TypeError, match="float"):
        optim.SGD([F.array(np.arange(3))], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    assert optim.Adam([{"params": {"w": m.w}, "lr": 0.5}]).parameters()[0] is m.w
    with pytest.raises(ValueError, match="more than one group"):
        optim.SGD([{"params": [m.w]}, {"params": [m.w]}], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([m.w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([m.w], lr=-1.0)
    with pytest.raises(TypeError, match="unknown"):
        optim.SGD([{"params": [m.w], "lr_typo": 1}], lr=0.1)


def test_mnn_spellings():
    w = _trainable(np.zeros(3, np.float32))
    opt = optim.SGD([w], learning_rate=0.2, momentum=0.9, weight_decay=0.01)
    assert (opt.learning_rate, opt.momentum, opt.weight_decay) == (0.2, 0.9, 0.01)
    opt.learning_rate = 0.5
    assert opt.param_groups[0]["lr"] == 0.5
    a = optim.ADAM([w], 0.01, 0.8, 0.9, 0.0, 1e-6)
    assert (a.learning_rate, a.momentum, a.momentum2, a.eps) == (0.01, 0.8, 0.9, 1e-6)
    a.momentum = 0.7
    assert a.param_groups[0]["betas"] == (0.7, 0.9)
    # MNN's ADAM equals Adam with betas=(momentum, momentum2)
    init, grads = _data(np.float64, seed=5)
    ref = _torch_run(torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6), init, grads)
    ps = [_trainable(x) for x in init]
    opt = optim.ADAM(ps, 0.01, 0.8, 0.9, 0.0, 1e-6)
    for gs, r in zip(grads, ref):
        opt.apply(gs)
        for p, x in zip(ps, r):
            np.testing.assert_allclose(p.read(), x, rtol=1e-10)


def test_l1_regularization():
    w = _trainable(np.array([2.0, -3.0, 0.0]))
    opt = optim.SGD([w], lr=0.1, weight_decay=0.5, regularization_method=optim.Regularization_Method.L1)
    opt.apply([np.zeros(3)])
    np.testing.assert_allclose(w.read(), [2.0 - 0.05, -3.0 + 0.05, 0.0])


def test_step_uses_autograd(monkeypatch):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((5, 3))
    b = rng.standard_normal(5)
    w = _trainable(rng.standard_normal(3))

    def fake_grad(loss, params, grad_outputs=None, create_graph=True):  # stands in for mnn_expr.grad
        assert loss == "loss" and create_graph is False  # d/dw 0.5*|A w - b|^2, no backward graph kept
        return [F.array(a.T @ (a @ params[0].read() - b))]

    monkeypatch.setattr(F, "grad", fake_grad, raising=False)
    tw = torch.nn.Parameter(torch.tensor(w.read()))
    topt = torch.optim.SGD([tw], lr=0.05, momentum=0.9, foreach=False)
    opt = optim.SGD([w], lr=0.05, momentum=0.9)
    for _ in range(10):
        assert opt.step("loss") == "loss"
        opt.zero_grad()
        tw.grad = torch.tensor(a.T @ (a @ tw.detach().numpy() - b))
        topt.step()
    np.testing.assert_allclose(w.read(), tw.detach().numpy(), rtol=1e-10)
    monkeypatch.delattr(F, "grad")
    with pytest.raises(NotImplementedError, match="mnn_expr.grad"):
        opt.step("loss")


# ----------------------------------------------------------------------------- schedulers

def _sched_pair(make_t, make_o, opt_name="SGD", opt_kwargs=None):
    opt_kwargs = opt_kwargs if opt_kwargs is not None else dict(momentum=0.9)
    tp = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    topt = getattr(torch.optim, opt_name)([{"params": [tp[0]], "lr": 0.1}, {"params": [tp[1]], "lr": 0.05}],
                                          **opt_kwargs)
    op = [_trainable(np.zeros(1, np.float32)), _trainable(np.zeros(1, np.float32))]
    oopt = getattr(optim, opt_name)([{"params": [op[0]], "lr": 0.1}, {"params": [op[1]], "lr": 0.05}], **opt_kwargs)
    return topt, make_t(topt), oopt, make_o(oopt)


SCHEDULERS = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[3, 8, 8, 20], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.001)),
    ("CosineAnnealingLR", dict(T_max=30)),
    ("LinearLR", dict(start_factor=0.25, total_iters=8)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.1, total_iters=12)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=31)),
    ("OneCycleLR", dict(max_lr=[0.5, 0.2], total_steps=40, anneal_strategy="linear", three_phase=True)),
    ("LambdaLR", dict(lr_lambda=lambda t: 0.95 ** t + 0.01 * (t % 3))),
    ("LambdaLR", dict(lr_lambda=[lambda t: 1.0 / (t + 1), lambda t: 0.5])),
    ("ConstantLR", dict(factor=0.4, total_iters=6)),
    ("PolynomialLR", dict(total_iters=20, power=2.0)),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SCHEDULERS)])
def test_scheduler_matches_torch(name, kwargs):
    topt, ts, oopt, os_ = _sched_pair(lambda o: getattr(torch.optim.lr_scheduler, name)(o, **kwargs),
                                      lambda o: getattr(ours_sched, name)(o, **kwargs))
    np.testing.assert_allclose(os_.get_last_lr(), ts.get_last_lr(), rtol=1e-12)
    for step in range(30):
        topt.step()
        ts.step()
        os_.step()
        np.testing.assert_allclose(os_.get_last_lr(), ts.get_last_lr(), rtol=1e-12, err_msg=f"step {step}")
        np.testing.assert_allclose([g["lr"] for g in oopt.param_groups], [g["lr"] for g in topt.param_groups],
                                   rtol=1e-12)
        np.testing.assert_allclose([g["momentum"] for g in oopt.param_groups],
                                   [g["momentum"] for g in topt.param_groups], rtol=1e-12)


def test_onecycle_cycles_adam_beta1():
    kw = dict(max_lr=0.3, total_steps=30, pct_start=0.25)
    topt, ts, oopt, os_ = _sched_pair(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, **kw),
                                      lambda o: ours_sched.OneCycleLR(o, **kw), "Adam", {})
    for _ in range(29):
        topt.step()
        ts.step()
        os_.step()
        assert oopt.param_groups[0]["betas"] == pytest.approx(topt.param_groups[0]["betas"], rel=1e-12)
        np.testing.assert_allclose(os_.get_last_lr(), ts.get_last_lr(), rtol=1e-12)


def test_linear_warmup_and_state_dict():
    topt, ts, oopt, os_ = _sched_pair(lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, 5),
                                      lambda o: ours_sched.LinearWarmup(o, warmup_steps=5, start_factor=0.1))
    for _ in range(3):
        topt.step()
        ts.step()
        os_.step()
    sd = copy.deepcopy(os_.state_dict())
    assert "optimizer" not in sd
    fresh = ours_sched.LinearWarmup(oopt, warmup_steps=5, start_factor=0.1)
    fresh.load_state_dict(sd)
    for g, lr in zip(oopt.param_groups, sd["_last_lr"]):
        g["lr"] = lr
    for _ in range(10):
        topt.step()
        ts.step()
        fresh.step()
        np.testing.assert_allclose(fresh.get_last_lr(), ts.get_last_lr(), rtol=1e-12)


@pytest.mark.parametrize("kwargs", [
    dict(patience=2, factor=0.5),
    dict(mode="max", patience=1, cooldown=2, threshold_mode="abs", threshold=0.05, min_lr=[0.01, 0.02]),
    dict(patience=0, factor=0.3, cooldown=1, min_lr=0.004),
])
def test_reduce_on_plateau_matches_torch(kwargs):
    rng = np.random.default_rng(7)
    metrics = np.concatenate([np.linspace(1.0, 0.5, 8), 0.5 + 0.01 * rng.standard_normal(22)])
    topt, ts, oopt, os_ = _sched_pair(lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, **kwargs),
                                      lambda o: ours_sched.ReduceLROnPlateau(o, **kwargs))
    changed = False
    for m in metrics:
        ts.step(float(m))
        os_.step(F.array(np.float32(m)) if m > 0.9 else float(m))
        assert os_.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
        changed |= os_.get_last_lr()[0] != 0.1
    assert changed
    sd = os_.state_dict()
    assert sd["num_bad_epochs"] == ts.state_dict()["num_bad_epochs"]


def test_scheduler_errors():
    w = _trainable(np.zeros(1, np.float32))
    opt = optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError):
        ours_sched.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError):
        ours_sched.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError):
        ours_sched.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="total steps|total_steps"):
        s = ours_sched.OneCycleLR(opt, max_lr=1.0, total_steps=3)
        for _ in range(4):
            s.step()


# ----------------------------------------------------------------------------- clipping

@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    rng = np.random.default_rng(8)
    gs = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tps = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64 if dtype == np.float64 else torch.float32))
           for s in SHAPES]
    for p, g in zip(tps, gs):
        p.grad = torch.tensor(g)
    tnorm = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=norm_type, foreach=False)
    inputs = [F.array(gs[0]), gs[1]]
    norm, clipped = optim.clip_grad_norm_(inputs, max_norm, norm_type=norm_type)
    tol = TOL[dtype]
    np.testing.assert_allclose(float(norm), tnorm.item(), **tol)
    for c, p in zip(clipped, tps):
        assert c.dtype.numpy == dtype
        np.testing.assert_allclose(c.read(), p.grad.numpy(), **tol)
    np.testing.assert_array_equal(inputs[0].read(), gs[0])  # functional: inputs untouched


def test_clip_grad_norm_none_and_nonfinite():
    norm, out = optim.clip_grad_norm_([None, np.array([3.0, 4.0])], 1.0)
    assert out[0] is None and float(norm) == pytest.approx(5.0)
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm_([np.array([np.inf, 1.0])], 1.0, error_if_nonfinite=True)


def test_clip_grad_value_matches_torch():
    rng = np.random.default_rng(9)
    gs = [3 * rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    tps = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES]
    for p, g in zip(tps, gs):
        p.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_value_(tps, 1.25, foreach=False)
    out = optim.clip_grad_value_(gs, 1.25)
    for o, p in zip(out, tps):
        np.testing.assert_array_equal(o.read(), p.grad.numpy())


def test_clip_then_apply_lazy():
    """Clipping and the update stay Var expressions: one lazy evaluation matches eager."""
    init, grads = _data(np.float32, seed=10, steps=5)
    results = []
    for lazy in (False, True):
        ps = [_trainable(a) for a in init]
        opt = optim.AdamW(ps, lr=0.01)
        with F.lazy_eval(lazy):
            for gs in grads:
                _, clipped = optim.clip_grad_norm_(gs, 1.0)
                opt.apply(clipped)
        results.append([p.read() for p in ps])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("lazy", [False, True])
def test_no_history_growth_and_pending_grads(lazy):
    """Gradients may be pending lazy expressions; parameters and state stay history-free leaves."""
    init, grads = _data(np.float64, seed=11, steps=8)
    ref = _torch_run(torch.optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True), init, grads)
    ps = [_trainable(a) for a in init]
    opt = optim.RMSprop(ps, lr=0.01, momentum=0.9, centered=True)
    with F.lazy_eval(lazy):
        for gs, r in zip(grads, ref):
            opt.apply([F.array(g * 2.0) * 0.5 for g in gs])  # pending in lazy mode
            for s in opt.state.values():
                assert all(len(v.inputs) == 0 and not v.requires_grad for v in s.values() if isinstance(v, F.Var))
            for p, x in zip(ps, r):
                assert len(p.inputs) == 0 and p.requires_grad
                np.testing.assert_allclose(p.read(), x, rtol=1e-10, atol=1e-12)


def test_float16_parameters_keep_their_dtype():
    w = F.array(np.ones(3, np.float16))
    w.fix_as_trainable()
    opt = optim.Adam([w], lr=0.1)
    for _ in range(3):
        opt.apply([np.ones(3, np.float32)])
    assert w.dtype == F.float16 and w.requires_grad
    tw = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    topt = torch.optim.Adam([tw], lr=0.1, foreach=False)
    for _ in range(3):
        tw.grad = torch.ones(3, dtype=torch.float16)
        topt.step()
    np.testing.assert_allclose(w.read().astype(np.float32), tw.detach().float().numpy(), atol=2e-3)


@pytest.mark.parametrize("name,kwargs", [SCHEDULERS[0], SCHEDULERS[1], SCHEDULERS[2], SCHEDULERS[3], SCHEDULERS[5],
                                         SCHEDULERS[11], SCHEDULERS[12]])
def test_scheduler_closed_form_epoch_matches_torch(name, kwargs):
    import warnings
    topt, ts, oopt, os_ = _sched_pair(lambda o: getattr(torch.optim.lr_scheduler, name)(o, **kwargs),
                                      lambda o: getattr(ours_sched, name)(o, **kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in [4, 9, 2, 17, 25]:
            ts.step(epoch)
            os_.step(epoch)
            np.testing.assert_allclose(os_.get_last_lr(), ts.get_last_lr(), rtol=1e-12)


def test_sequential_lr_matches_torch():
    def make(mod):
        def f(o):
            warm = mod.LinearLR(o, start_factor=0.1, total_iters=5)
            cos = mod.CosineAnnealingLR(o, T_max=20, eta_min=1e-4)
            return mod.SequentialLR(o, [warm, cos], milestones=[5])
        return f
    topt, ts, oopt, os_ = _sched_pair(make(torch.optim.lr_scheduler), make(ours_sched))
    np.testing.assert_allclose(os_.get_last_lr(), ts.get_last_lr(), rtol=1e-12)
    for step in range(30):
        topt.step()
        ts.step()
        os_.step()
        np.testing.assert_allclose(os_.get_last_lr(), ts.get_last_lr(), rtol=1e-12, err_msg=f"step {step}")
    sd = os_.state_dict()
    assert len(sd["_schedulers"]) == 2 and "optimizer" not in sd["_schedulers"][0]
    os_.load_state_dict(sd)
    with pytest.raises(ValueError, match="milestones"):
        ours_sched.SequentialLR(oopt, [ours_sched.ConstantLR(oopt)], milestones=[3])


@pytest.mark.parametrize("module", ["mnn_optim", "mnn_optim.optimizer", "mnn_optim.sgd", "mnn_optim.adam",
                                    "mnn_optim.rmsprop", "mnn_optim.adagrad", "mnn_optim.clip",
                                    "mnn_optim.lr_scheduler"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("name,kwargs", [CASES[4], CASES[8], CASES[11], CASES[15], CASES[17]])
def test_load_torch_state_dict_continues(name, kwargs):
    """A torch optimiser's state dict loads into ours and the trajectories stay together."""
    init, grads = _data(np.float64, seed=12)
    half = STEPS // 2
    tps = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    topt = getattr(torch.optim, name)(tps, foreach=False, **kwargs)
    for i, gs in enumerate(grads):
        if i == half:
            ps = [_trainable(p.detach().numpy().copy()) for p in tps]
            opt = getattr(optim, name)(ps, lr=1.0)
            opt.load_state_dict(topt.state_dict())
        for p, g in zip(tps, gs):
            p.grad = torch.tensor(g)
        topt.step()
        if i >= half:
            opt.apply(gs)
            for p, t in zip(ps, tps):
                np.testing.assert_allclose(p.read(), t.detach().numpy(), rtol=1e-10, atol=1e-12)
