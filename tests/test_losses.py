"""mnn_nn.loss against torch.nn.functional (and MNN's formulas against numpy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import mnn_expr as F
from mnn_nn import loss as L

RNG = np.random.default_rng(1)
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-12)}
REDS = ["mean", "sum", "none"]


@pytest.fixture(params=["eager", "lazy"], autouse=True)
def mode(request):
    """Every test runs eagerly and lazily (MNN trains in lazy mode)."""
    with F.lazy_eval(request.param == "lazy"):
        yield request.param


def rand(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


def close(a, b, dtype="float32"):
    np.testing.assert_allclose(np.asarray(a.read()), b.detach().numpy(), **TOL[dtype])


def T(x):
    return torch.from_numpy(np.asarray(x))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDS)
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2, 3), (4,)])
@pytest.mark.parametrize("opts", [dict(), dict(label_smoothing=0.2), dict(ignore_index=1), dict(weight=True),
                                  dict(weight=True, ignore_index=2, label_smoothing=0.1)])
def test_cross_entropy_indices(dtype, reduction, shape, opts):
    x = rand(*shape, dtype=dtype) * 3
    c = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = RNG.integers(0, c, tshape)
    if "ignore_index" in opts and t.size > 1:
        t.flat[0] = opts["ignore_index"]
    kw = dict(opts)
    tkw = dict(opts)
    if opts.get("weight"):
        w = RNG.random(c).astype(dtype) + 0.5
        kw["weight"], tkw["weight"] = F.array(w), T(w)
    got = L.cross_entropy(F.array(x), F.array(t), reduction=reduction, **kw)
    close(got, TF.cross_entropy(T(x), T(t), reduction=reduction, **tkw), dtype)


@pytest.mark.parametrize("reduction", REDS)
@pytest.mark.parametrize("opts", [dict(), dict(label_smoothing=0.3), dict(weight=True),
                                  dict(weight=True, label_smoothing=0.1)])
def test_cross_entropy_probabilities(reduction, opts):
    x = rand(4, 5, 3) * 2
    p = np.exp(rand(4, 5, 3))
    p = (p / p.sum(1, keepdims=True)).astype(np.float32)
    kw, tkw = dict(opts), dict(opts)
    if opts.get("weight"):
        w = RNG.random(5).astype(np.float32) + 0.5
        kw["weight"], tkw["weight"] = F.array(w), T(w)
    close(L.cross_entropy(F.array(x), F.array(p), reduction=reduction, **kw),
          TF.cross_entropy(T(x), T(p), reduction=reduction, **tkw))


def test_cross_entropy_extreme_logits_and_errors():
    x = np.array([[0.0, -np.inf, 1.0], [1000.0, 0.0, -1000.0]], np.float32)
    t = np.array([2, 0])
    close(L.cross_entropy(F.array(x), F.array(t)), TF.cross_entropy(T(x), T(t)))
    with pytest.raises(IndexError):
        L.cross_entropy(F.array(x), F.array([3, 0]))
    with pytest.raises(ValueError, match="target shape"):
        L.cross_entropy(F.array(x), F.array([0, 0, 0]))
    with pytest.raises(ValueError, match="reduction"):
        L.cross_entropy(F.array(x), F.array(t), reduction="avg")


@pytest.mark.parametrize("reduction", REDS)
def test_nll_loss(reduction):
    x = np.log(np.abs(rand(6, 4)) + 0.1).astype(np.float32)
    t = RNG.integers(0, 4, 6)
    t[2] = -100
    w = RNG.random(4).astype(np.float32) + 0.1
    close(L.nll_loss(F.array(x), F.array(t), reduction=reduction), TF.nll_loss(T(x), T(t), reduction=reduction))
    close(L.nll_loss(F.array(x), F.array(t), weight=F.array(w), reduction=reduction),
          TF.nll_loss(T(x), T(t), weight=T(w), reduction=reduction))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDS)
def test_regression_losses(dtype, reduction):
    x, y = rand(4, 5, dtype=dtype) * 2, rand(4, 5, dtype=dtype) * 2
    fx, fy, tx, ty = F.array(x), F.array(y), T(x), T(y)
    close(L.mse_loss(fx, fy, reduction), TF.mse_loss(tx, ty, reduction=reduction), dtype)
    close(L.l1_loss(fx, fy, reduction), TF.l1_loss(tx, ty, reduction=reduction), dtype)
    for beta in (1.0, 0.5, 0.0):
        close(L.smooth_l1_loss(fx, fy, reduction, beta=beta), TF.smooth_l1_loss(tx, ty, reduction=reduction,
                                                                                 beta=beta), dtype)
    for delta in (1.0, 0.3, 2.5):
        close(L.huber_loss(fx, fy, reduction, delta=delta), TF.huber_loss(tx, ty, reduction=reduction, delta=delta),
              dtype)
    with pytest.raises(ValueError, match="shape"):
        L.mse_loss(fx, F.array(rand(5, 4, dtype=dtype)))


@pytest.mark.parametrize("reduction", REDS)
def test_binary_cross_entropy(reduction):
    p = (1 / (1 + np.exp(-rand(4, 3) * 3))).astype(np.float32)
    p[0, 0], p[0, 1] = 0.0, 1.0  # the -100 clamp
    t = RNG.random((4, 3)).astype(np.float32)
    w = RNG.random((4, 3)).astype(np.float32)
    close(L.binary_cross_entropy(F.array(p), F.array(t), reduction=reduction),
          TF.binary_cross_entropy(T(p), T(t), reduction=reduction))
    close(L.binary_cross_entropy(F.array(p), F.array(t), weight=F.array(w), reduction=reduction),
          TF.binary_cross_entropy(T(p), T(t), weight=T(w), reduction=reduction))


@pytest.mark.parametrize("reduction", REDS)
def test_bce_with_logits(reduction):
    x = rand(5, 3) * 10
    x[0, 0], x[0, 1] = 200.0, -200.0
    t = (RNG.random((5, 3)) > 0.5).astype(np.float32)
    pw = RNG.random(3).astype(np.float32) * 3
    w = RNG.random((5, 3)).astype(np.float32)
    close(L.binary_cross_entropy_with_logits(F.array(x), F.array(t), reduction=reduction),
          TF.binary_cross_entropy_with_logits(T(x), T(t), reduction=reduction))
    close(L.binary_cross_entropy_with_logits(F.array(x), F.array(t), weight=F.array(w), reduction=reduction,
                                             pos_weight=F.array(pw)),
          TF.binary_cross_entropy_with_logits(T(x), T(t), weight=T(w), reduction=reduction, pos_weight=T(pw)))


@pytest.mark.filterwarnings("ignore:reduction. .mean. divides")
@pytest.mark.parametrize("reduction", REDS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    x = np.log(np.abs(rand(4, 5)) + 0.05).astype(np.float32)
    t = np.abs(rand(4, 5)).astype(np.float32)
    t[0, :2] = 0.0  # 0 * log 0 = 0
    if log_target:
        t = np.log(t + 0.1).astype(np.float32)
    close(L.kl_div(F.array(x), F.array(t), reduction=reduction, log_target=log_target),
          TF.kl_div(T(x), T(t), reduction=reduction, log_target=log_target))


def test_mnn_losses_match_their_formulas():
    logits = rand(6, 4)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    onehot = np.eye(4, dtype=np.float32)[RNG.integers(0, 4, 6)]
    q = np.full_like(p, 0.05) + onehot * 0.8
    fp, fo, fq = F.array(p), F.array(onehot), F.array(q)
    tol = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(L.mnn_cross_entropy(fp, fo).item(), -np.mean(np.sum(np.log(p) * onehot, 1)), **tol)
    np.testing.assert_allclose(L.mnn.cross_entropy(fp, fo).item(), TF.nll_loss(T(np.log(p)), T(onehot.argmax(1))),
                               **tol)
    np.testing.assert_allclose(L.kl(fp, fq).item(), np.mean(np.sum(p * (np.log(p) - np.log(q)), 1)), **tol)
    np.testing.assert_allclose(L.mse(fp, fo).item(), np.mean(np.sum((p - onehot) ** 2, 1)), **tol)
    np.testing.assert_allclose(L.mae(fp, fo).item(), np.mean(np.sum(np.abs(p - onehot), 1)), **tol)
    np.testing.assert_allclose(L.hinge(F.array(logits), fo).item(),
                               np.mean(np.sum(np.maximum(0, 1 - logits * onehot), 1)), **tol)
    s, te = rand(6, 4), rand(6, 4)
    sm = lambda z: np.exp(z) / np.exp(z).sum(1, keepdims=True)  # noqa: E731
    ss, st = sm(s / 2.0), sm(te / 2.0)
    want = 0.3 * 4.0 * np.mean(np.sum(ss * (np.log(ss) - np.log(st)), 1)) + \
        0.7 * -np.mean(np.sum(np.log(sm(s)) * onehot, 1))
    np.testing.assert_allclose(L.distill_loss(F.array(s), F.array(te), fo, 2.0, 0.3).item(), want, **tol)
    with pytest.raises(ValueError, match="batch, classes"):
        L.mse(F.array(p[0]), F.array(onehot[0]))
