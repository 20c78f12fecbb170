"""Loss functions (PyTorch's ``torch.nn.functional`` losses) and MNN's ``nn.loss`` functions.

PyTorch-style: :func:`cross_entropy`, :func:`nll_loss`, :func:`mse_loss`,
:func:`l1_loss`, :func:`smooth_l1_loss`, :func:`huber_loss`,
:func:`binary_cross_entropy`, :func:`binary_cross_entropy_with_logits`,
:func:`kl_div`, each with ``reduction`` ``'mean'`` / ``'sum'`` / ``'none'``.

MNN-style (``f(predicts, onehot_targets)`` over ``[batch, classes]``, the sum
over classes averaged over the batch): :func:`kl`, :func:`mse`, :func:`mae`,
:func:`hinge`, and :func:`distill_loss`.  MNN's ``cross_entropy`` takes
*probabilities* and clashes with PyTorch's (which takes logits), so here
``cross_entropy`` is PyTorch's and MNN's is :func:`mnn_cross_entropy`; the
namespace ``mnn_nn.loss.mnn`` holds all of MNN's under their MNN names
(``nn.loss.mnn.cross_entropy(predicts, onehot)``).

>>> import mnn_expr as F, mnn_nn as nn
>>> round(nn.loss.cross_entropy(F.array([[2.0, 0.0]]), F.array([0])).item(), 4)
0.1269
"""

from __future__ import annotations

import types
from typing import Any, Optional

import numpy as np

import mnn_expr as F
from mnn_expr import Var

__all__ = [
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div", "kl", "mse", "mae", "hinge", "mnn_cross_entropy", "distill_loss",
    "mnn",
]


def _v(x: Any) -> Var:
    return x if isinstance(x, Var) else F.asarray(np.asarray(x))


def _fv(x: Any, like: Optional[Var] = None) -> Var:
    v = _v(x)
    if like is not None and v.dtype != like.dtype:
        return v.astype(like.dtype)
    if not v.dtype.is_floating:
        return v.astype("float32")
    return v


def _reduce(loss: Var, reduction: str, op: str) -> Var:
    if reduction == "mean":
        return F.mean(loss)
    if reduction == "sum":
        return F.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape(a: Var, b: Var, op: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{op}: input shape {a.shape} and target shape {b.shape} must match")


def _class_view(w: Var, ndim: int) -> Var:
    """A [C] weight reshaped to broadcast along the class dim (1, or 0 for 1-d input)."""
    return w if ndim == 1 else F.reshape(w, [1, -1] + [1] * (ndim - 2))


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,  # noqa: A002
             reduction: str = "mean") -> Var:
    """Negative log-likelihood of log-probabilities ``input`` [N, C, ...] (or [C]) at class indices ``target``.

    ``mean`` divides by the summed weights of the non-ignored targets (PyTorch's rule).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.loss.nll_loss(F.array([[-1.0, -2.0]]), F.array([1])).item()
    2.0
    """
    logp = _fv(input)
    t = _v(target)
    op = "nll_loss"
    if t.dtype.is_floating or t.dtype.name == "bool":
        raise TypeError(f"{op}: target must hold integer class indices, got {t.dtype}")
    if logp.ndim < 1:
        raise ValueError(f"{op}: input must have a class dim, got shape {logp.shape}")
    cdim = 0 if logp.ndim == 1 else 1
    c = logp.shape[cdim]
    want = tuple(s for i, s in enumerate(logp.shape) if i != cdim)
    if tuple(t.shape) != want:
        raise ValueError(f"{op}: target shape {t.shape} does not match input shape {logp.shape} (expected {want})")
    if not F.is_tracing():  # values at hand: a clear error for an out-of-range class
        tn = np.asarray(t.read())
        valid_np = tn != ignore_index
        if np.any((tn[valid_np] < 0) | (tn[valid_np] >= c)):
            raise IndexError(f"{op}: target values must be in [0, {c}) or ignore_index {ignore_index}")
    # with ops only, so it also traces (F.compile) and stays lazy
    valid = F.not_equal(t, ignore_index)
    safe = F.where(valid, t, 0).astype("int64")
    picked = -F.squeeze(F.take_along_axis(logp, F.expand_dims(safe, cdim), axis=cdim), cdim)
    wv = valid.astype(logp.dtype)
    if weight is not None:
        w = _fv(weight)
        if tuple(w.shape) != (c,):
            raise ValueError(f"{op}: weight must have shape ({c},), got {tuple(w.shape)}")
        wv = wv * F.take(w.astype(logp.dtype), safe)
    loss = picked * wv
    if reduction == "mean":
        return F.sum(loss) / F.sum(wv)
    return _reduce(loss, reduction, op)


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,  # noqa: A002
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Var:
    """Cross entropy of logits ``input`` [N, C, ...] (or [C]) with class indices or class probabilities.

    Integer ``target`` [N, ...]: class indices (``ignore_index``, ``weight`` per class,
    ``label_smoothing`` as PyTorch).  Float ``target`` shaped like ``input``:
    probabilities (``mean`` averages over the N * ... positions).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> x = F.array([[1.0, 2.0, 3.0]])
    >>> round(nn.loss.cross_entropy(x, F.array([2]), label_smoothing=0.1).item(), 4)
    0.5076
    """
    x = _fv(input)
    t = _v(target)
    op = "cross_entropy"
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if x.ndim < 1:
        raise ValueError(f"{op}: input must have a class dim, got shape {x.shape}")
    cdim = 0 if x.ndim == 1 else 1
    c = x.shape[cdim]
    logp = F.log_softmax(x, cdim)
    wv = None
    if weight is not None:
        wv = _fv(weight, x)
        if tuple(wv.shape) != (c,):
            raise ValueError(f"{op}: weight must have shape ({c},), got {wv.shape}")
    if t.dtype.is_floating:
        _same_shape(x, t, op)
        t = _fv(t, x)
        if label_smoothing > 0:
            t = t * (1.0 - label_smoothing) + label_smoothing / c
        prod = logp * t
        if wv is not None:
            prod = prod * _class_view(wv, x.ndim)
        loss = -F.sum(prod, axis=cdim)
        if reduction == "mean":
            return F.sum(loss) / float(max(x.size // c if c else 0, 0) or np.nan)
        return _reduce(loss, reduction, op)
    nll = nll_loss(logp, t, weight, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    tn = np.asarray(t.read()).astype(np.int64)
    valid = tn != ignore_index
    prod = logp if wv is None else logp * _class_view(wv, x.ndim)
    smooth = -F.sum(prod, axis=cdim) * F.asarray(valid.astype(x.dtype.numpy))
    if reduction == "mean":
        if wv is None:
            denom = float(valid.sum())
        else:
            denom = float(np.asarray(wv.read(), np.float64)[tn[valid]].sum())
        smooth = F.sum(smooth) / (denom if denom else np.nan)
    else:
        smooth = _reduce(smooth, reduction, op)
    return nll * (1.0 - label_smoothing) + smooth * (label_smoothing / c)


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Var:  # noqa: A002
    """``(input - target) ** 2``, reduced.

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.loss.mse_loss(F.array([1.0, 3.0]), F.array([0.0, 0.0])).item()
    5.0
    """
    x = _fv(input)
    t = _fv(target, x)
    _same_shape(x, t, "mse_loss")
    d = x - t
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Var:  # noqa: A002
    """``|input - target|``, reduced."""
    x = _fv(input)
    t = _fv(target, x)
    _same_shape(x, t, "l1_loss")
    return _reduce(F.abs(x - t), reduction, "l1_loss")


def smooth_l1_loss(input: Any, target: Any, reduction: str = "mean", beta: float = 1.0) -> Var:  # noqa: A002
    """``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``beta=0``: L1)."""
    x = _fv(input)
    t = _fv(target, x)
    _same_shape(x, t, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    ad = F.abs(x - t)
    if beta == 0:
        return _reduce(ad, reduction, "smooth_l1_loss")
    loss = F.where(ad < beta, ad * ad * (0.5 / beta), ad - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0) -> Var:  # noqa: A002
    """``0.5 d**2`` where ``|d| <= delta``, else ``delta * (|d| - 0.5 delta)``."""
    x = _fv(input)
    t = _fv(target, x)
    _same_shape(x, t, "huber_loss")
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    ad = F.abs(x - t)
    loss = F.where(ad <= delta, ad * ad * 0.5, (ad - 0.5 * delta) * delta)
    return _reduce(loss, reduction, "huber_loss")


def binary_cross_entropy(input: Any, target: Any, weight: Any = None, reduction: str = "mean") -> Var:  # noqa: A002
    """``-(t log p + (1 - t) log(1 - p))`` of probabilities ``input`` (logs clamped at -100, as PyTorch)."""
    p = _fv(input)
    t = _fv(target, p)
    _same_shape(p, t, "binary_cross_entropy")
    lp = F.maximum(F.log(p), -100.0)
    l1p = F.maximum(F.log(1.0 - p), -100.0)
    loss = -(t * lp + (1.0 - t) * l1p)
    if weight is not None:
        loss = loss * _fv(weight, p)
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None,  # noqa: A002
                                     reduction: str = "mean", pos_weight: Any = None) -> Var:
    """Binary cross entropy of ``sigmoid(input)`` computed stably; ``pos_weight`` scales positives."""
    x = _fv(input)
    t = _fv(target, x)
    _same_shape(x, t, "binary_cross_entropy_with_logits")
    softplus_neg = F.log1p(F.exp(-F.abs(x))) + F.maximum(-x, 0.0)  # log(1 + exp(-x))
    if pos_weight is not None:
        lw = (_fv(pos_weight, x) - 1.0) * t + 1.0
        loss = (1.0 - t) * x + lw * softplus_neg
    else:
        loss = (1.0 - t) * x + softplus_neg
    if weight is not None:
        loss = loss * _fv(weight, x)
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def kl_div(input: Any, target: Any, reduction: str = "mean", log_target: bool = False) -> Var:  # noqa: A002
    """``target * (log(target) - input)`` with ``input`` log-probabilities (0 where target is 0).

    ``log_target``: target holds log-probabilities.  ``reduction='batchmean'``
    divides the sum by the batch size (the mathematically correct KL).
    """
    x = _fv(input)
    t = _fv(target, x)
    _same_shape(x, t, "kl_div")
    if log_target:
        loss = F.exp(t) * (t - x)
    else:
        safe = F.where(t > 0, t, 1.0)
        loss = F.where(t > 0, t * F.log(safe), 0.0) - t * x
    if reduction == "batchmean":
        return F.sum(loss) / float(x.shape[0] if x.ndim else 1)
    return _reduce(loss, reduction, "kl_div")


# ---- MNN's nn.loss -----------------------------------------------------------------------------


def _mnn_check(p: Var, t: Var, op: str) -> None:
    if p.ndim != 2 or tuple(p.shape) != tuple(t.shape):
        raise ValueError(f"{op}: predicts and onehot targets must both be [batch, classes], got {p.shape} and "
                         f"{t.shape}")


def mnn_cross_entropy(predicts: Any, onehot: Any) -> Var:
    """MNN's ``nn.loss.cross_entropy(predicts, onehot)``: ``-mean_batch(sum_c onehot * log(predicts))``
    with ``predicts`` probabilities (e.g. after softmax).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> round(nn.loss.mnn_cross_entropy(F.array([[0.5, 0.5]]), F.array([[1.0, 0.0]])).item(), 4)
    0.6931
    """
    p, t = _fv(predicts), None
    t = _fv(onehot, p)
    _mnn_check(p, t, "cross_entropy")
    return -F.mean(F.sum(F.log(p) * t, axis=1))


def kl(predicts: Any, onehot: Any) -> Var:
    """MNN's ``nn.loss.kl``: ``mean_batch(sum_c predicts * (log(predicts) - log(targets)))``."""
    p = _fv(predicts)
    t = _fv(onehot, p)
    _mnn_check(p, t, "kl")
    return F.mean(F.sum(p * (F.log(p) - F.log(t)), axis=1))


def mse(predicts: Any, onehot: Any) -> Var:
    """MNN's ``nn.loss.mse``: ``mean_batch(sum_c (predicts - targets)**2)``."""
    p = _fv(predicts)
    t = _fv(onehot, p)
    _mnn_check(p, t, "mse")
    d = p - t
    return F.mean(F.sum(d * d, axis=1))


def mae(predicts: Any, onehot: Any) -> Var:
    """MNN's ``nn.loss.mae``: ``mean_batch(sum_c |predicts - targets|)``."""
    p = _fv(predicts)
    t = _fv(onehot, p)
    _mnn_check(p, t, "mae")
    return F.mean(F.sum(F.abs(p - t), axis=1))


def hinge(predicts: Any, onehot: Any) -> Var:
    """MNN's ``nn.loss.hinge``: ``mean_batch(sum_c max(0, 1 - predicts * targets))``."""
    p = _fv(predicts)
    t = _fv(onehot, p)
    _mnn_check(p, t, "hinge")
    return F.mean(F.sum(F.maximum(1.0 - p * t, 0.0), axis=1))


def distill_loss(student_logits: Any, teacher_logits: Any, onehot: Any, temperature: float,
                 alpha: float) -> Var:
    """MNN's ``_DistillLoss``: ``alpha * T**2 * kl(softmax(s / T), softmax(t / T)) +
    (1 - alpha) * cross_entropy(softmax(s), onehot)``."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"distill_loss: alpha must be in [0, 1], got {alpha}")
    s = _fv(student_logits)
    te = _fv(teacher_logits, s)
    soft_t = F.softmax(te * (1.0 / temperature), -1)
    soft_s = F.softmax(s * (1.0 / temperature), -1)
    return kl(soft_s, soft_t) * (alpha * temperature * temperature) + \
        mnn_cross_entropy(F.softmax(s, -1), onehot) * (1 - alpha)


mnn = types.SimpleNamespace(cross_entropy=mnn_cross_entropy, kl=kl, mse=mse, mae=mae, hinge=hinge,
                            distill_loss=distill_loss)
mnn.__doc__ = "MNN's nn.loss functions under their MNN names: f(predicts, onehot_targets)."
