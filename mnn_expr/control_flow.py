"""Control flow: ``cond``, ``while_loop``, ``fori_loop``, ``scan`` (JAX's signatures).

Outside :func:`mnn_expr.compile` they run the Python functions directly (a predicate
that is a Var is read), so the ops they record are ordinary graph ops and gradients flow
through the branch taken and through every iteration.  While ``compile`` traces:

- ``cond`` with a traced predicate traces both branches and selects each result with
  ``where`` (so both branches must give results of the same structure, shapes and
  dtypes; gradients reach the taken branch only, as long as the other one stays finite);
- ``fori_loop`` with int bounds and ``scan`` over a Var of static length unroll;
- ``while_loop`` cannot be traced (its trip count depends on values) and says so.

Sub-graph ops (MNN's ``If`` / ``While``) that keep loops rolled inside compiled and
exported programs are future work; these functions are the API they will back.

>>> import mnn_expr as F
>>> F.cond(F.array(2.0) > 1, lambda x: x * 10, lambda x: x, F.array(3.0)).item()
30.0
>>> F.fori_loop(0, 4, lambda i, acc: acc + i, F.array(0.0)).item()
6.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import executor as _executor
from ._native import Var
from .compile import _flatten, _unflatten
from .creation import asarray

__all__ = ["cond", "while_loop", "fori_loop", "scan"]


def _leaves(tree: Any, out: list) -> Any:
    return _flatten(tree, out, "control flow: values")


def _concrete(pred: Any, what: str) -> bool:
    """The Python truth of ``pred`` (a bool, a number or a one-element Var)."""
    if isinstance(pred, Var):
        if pred.size != 1:
            raise ValueError(f"{what}: the predicate must have one element, got shape {pred.shape}")
        return bool(pred.read().item())
    return bool(pred)


def cond(pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
    """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``.

    Inside ``compile`` with a traced predicate, both branches run and each result is
    ``where(pred, true_result, false_result)``.

    >>> import mnn_expr as F
    >>> F.cond(False, lambda x: x + 1, lambda x: x - 1, F.array(1.0)).item()
    0.0
    """
    traced = isinstance(pred, Var) and _executor.is_tracing()
    if not traced:
        return true_fn(*operands) if _concrete(pred, "cond") else false_fn(*operands)
    from .elementwise import where  # (a late import: elementwise imports this package's core)

    p = asarray(pred)
    if p.size != 1:
        raise ValueError(f"cond: the predicate must have one element, got shape {p.shape}")
    p = p.reshape(()).astype("bool")
    t_leaves: list = []
    f_leaves: list = []
    t_spec = _leaves(true_fn(*operands), t_leaves)
    f_spec = _leaves(false_fn(*operands), f_leaves)
    if t_spec != f_spec:
        raise TypeError(f"cond: inside compile both branches must return the same structure, got {t_spec} and "
                        f"{f_spec}")
    out = []
    for i, (a, b) in enumerate(zip(t_leaves, f_leaves)):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise TypeError(f"cond: inside compile result {i} of the branches differs: {a.shape} {a.dtype} vs "
                            f"{b.shape} {b.dtype}")
        out.append(where(p, a, b))
    return _unflatten(t_spec, out, [0])


def while_loop(cond_fn: Callable, body_fn: Callable, init: Any) -> Any:
    """Repeats ``state = body_fn(state)`` while ``cond_fn(state)`` holds; returns the state.

    The trip count depends on values, so it cannot be traced by ``compile`` (use
    ``fori_loop`` with int bounds there).  Outside compile every iteration's ops are
    recorded, so gradients flow through the iterations taken.

    >>> import mnn_expr as F
    >>> F.while_loop(lambda s: s < 100, lambda s: s * 3, F.array(1.0)).item()
    243.0
    """
    if _executor.is_tracing():
        raise NotImplementedError(
            "while_loop: its trip count depends on values, which are symbolic inside compile; use fori_loop with "
            "int bounds (or scan over a Var) there, or call the loop outside the compiled function")
    state = init
    while _concrete(cond_fn(state), "while_loop"):
        state = body_fn(state)
    return state


def fori_loop(lower: int, upper: int, body_fn: Callable, init: Any) -> Any:
    """``state = body_fn(i, state)`` for ``i`` in ``range(lower, upper)``; returns the state.

    Int bounds unroll inside ``compile``; Var bounds are read (so not while tracing).

    >>> import mnn_expr as F
    >>> F.fori_loop(1, 4, lambda i, x: x * i, F.array(1.0)).item()
    6.0
    """
    lo, hi = (int(_bound(b, "fori_loop")) for b in (lower, upper))
    state = init
    for i in range(lo, hi):
        state = body_fn(i, state)
    return state


def _bound(b: Any, what: str) -> int:
    if isinstance(b, Var):
        if _executor.is_tracing():
            raise NotImplementedError(f"{what}: a bound that is a Var is symbolic inside compile; pass an int")
        return int(b.read().item())
    return int(b)


def scan(fn: Callable, init: Any, xs: Any = None, length: int | None = None) -> tuple:
    """Loops ``carry, y = fn(carry, x)`` over the leading axis of ``xs``; returns ``(carry, ys)``.

    ``xs`` is a Var, a list/tuple/dict of Vars sharing the leading length, or None (then
    ``length`` steps with ``x = None``).  ``ys`` stacks the per-step ``y`` along a new
    leading axis (None when ``fn`` returns None).  The length is static, so it unrolls
    inside ``compile``; gradients flow through every step.

    >>> import mnn_expr as F
    >>> carry, ys = F.scan(lambda c, x: (c + x, c * x), F.array(0.0), F.array([1.0, 2.0, 3.0]))
    >>> carry.item(), ys.tolist()
    (6.0, [0.0, 2.0, 9.0])
    """
    from .movement import stack

    x_leaves: list = []
    x_spec = _leaves(xs, x_leaves) if xs is not None else None
    lengths = {int(v.shape[0]) for v in x_leaves if v.ndim > 0}
    if any(v.ndim == 0 for v in x_leaves):
        raise ValueError("scan: every xs must have a leading axis to scan over")
    if xs is not None and len(lengths) != 1:
        raise ValueError(f"scan: the xs must share their leading length, got {sorted(lengths)}")
    n = lengths.pop() if xs is not None else length
    if n is None:
        raise ValueError("scan: pass xs or length")
    if length is not None and int(length) != n:
        raise ValueError(f"scan: length {length} does not match the xs' leading length {n}")
    carry = init
    ys: list = []
    y_spec = None
    for t in range(n):
        x_t = _unflatten(x_spec, [v[t] for v in x_leaves], [0]) if xs is not None else None
        carry, y = fn(carry, x_t)
        y_leaves: list = []
        spec = _leaves(y, y_leaves)
        if y_spec is None:
            y_spec = spec
        elif spec != y_spec:
            raise TypeError(f"scan: fn returned {spec} at step {t} but {y_spec} at step 0")
        ys.append(y_leaves)
    if n == 0 or not ys[0]:
        return carry, None if n == 0 else _unflatten(y_spec, [], [0])
    stacked = [stack([step[i] for step in ys], axis=0) for i in range(len(ys[0]))]
    return carry, _unflatten(y_spec, stacked, [0])
