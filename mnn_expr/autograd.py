"""Reverse-mode automatic differentiation on the expression graph.

A Var keeps the op that produced it (its *history*) while it depends on a value that
``requires_grad`` (set it, or call ``fix_as_trainable()``, before computing with the value);
this holds in eager and in lazy mode, so :func:`grad` sees the same graph in both.  It walks
that graph back from the outputs and applies the rules of :mod:`mnn_expr.grad_rules`.  The
gradients are Vars built from ops: with ``create_graph=True`` (the default) they keep their
own history, so they can be differentiated again.

>>> import mnn_expr as F
>>> x = F.array([1.0, 2.0, 3.0])
>>> x.requires_grad = True
>>> (g,) = F.grad((x * x).sum(), [x])
>>> g.tolist()
[2.0, 4.0, 6.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

from ._core import OP_TABLE, apply1
from ._native import Var
from .creation import asarray, ones, zeros
from .grad_rules import NON_DIFFERENTIABLE, NON_DIFFERENTIABLE_OUTPUTS, RULES

__all__ = ["grad", "stop_gradient", "value_and_grad"]

_WHY_NONE = {
    "where": {0: "the condition of where"},
    "gather": {1: "the indices of gather"},
    "gather_nd": {1: "the indices of gather_nd"},
    "take_along_axis": {1: "the indices of take_along_axis"},
    "scatter_nd": {1: "the indices of scatter_nd"},
    "put_along_axis": {1: "the indices of put_along_axis"},
}


def stop_gradient(x: Any) -> Var:
    """``x``'s value, seen by :func:`grad` as a constant (no gradient flows through it).

    It is an identity op (a zero-copy view in eager mode) whose result has
    ``requires_grad = False``: :func:`grad` only follows values that require gradients,
    so the graph is cut here.  It stays lazy in lazy mode and follows placeholder writes.

    >>> import mnn_expr as F
    >>> x = F.array([3.0]); x.requires_grad = True
    >>> F.grad((x * stop_gradient(x)).sum(), [x])[0].tolist()
    [3.0]
    """
    x = asarray(x)
    y = apply1("reshape", [x], shape=list(x.shape))
    y.requires_grad = False
    return y


def _detached(g: Var) -> Var:
    """``g`` cut from the graph (it already is when the rules ran on constants)."""
    return g if not g.requires_grad else stop_gradient(g)


def _as_list(v: Any, what: str) -> tuple[list, bool]:
    if isinstance(v, Var):
        return [v], True
    if isinstance(v, (list, tuple)):
        return list(v), False
    raise TypeError(f"grad: {what} must be a Var or a list of Vars, got {type(v).__name__}")


def _describe(v: Var, i: int, what: str) -> str:
    name = f" '{v.name}'" if v.name else ""
    return f"{what} {i}{name} (shape {v.shape}, {v.dtype})"


def grad(
    outputs: Union[Var, Sequence[Var]],
    inputs: Union[Var, Sequence[Var]],
    grad_outputs: Optional[Union[Any, Sequence[Any]]] = None,
    create_graph: bool = True,
) -> list[Var]:
    """Gradients of ``outputs`` with respect to ``inputs`` (reverse mode; a list of Vars).

    Computes ``sum_k grad_outputs[k] . d outputs[k] / d inputs[i]`` for every input.
    ``grad_outputs`` (one per output) defaults to ones for outputs of one element and is
    required for larger ones.  Every input must have ``requires_grad`` set (or be
    ``fix_as_trainable()``) before the outputs are computed from it; an input the outputs do
    not depend on gets zeros.  Integer/bool outputs or inputs, and inputs that reach the
    outputs only through non-differentiable steps (comparisons, argmax, casts to integers,
    indices), raise ValueError/TypeError saying why.

    ``create_graph`` (default True) keeps the gradients' own history so they can be
    differentiated again; False runs the rules on constants (stop_gradient views of the
    forward values), so the backward ops record no history and eager backward passes free
    their intermediates at once; the gradients come back cut from the graph.

    >>> import mnn_expr as F
    >>> w = F.array([[1.0, 2.0]]); w.requires_grad = True
    >>> x = F.array([[3.0], [4.0]])
    >>> F.grad(F.matmul(w, x).sum(), [w])[0].tolist()
    [[3.0, 4.0]]
    """
    outs, _ = _as_list(outputs, "outputs")
    ins, _ = _as_list(inputs, "inputs")
    if not outs:
        raise ValueError("grad: no outputs given")
    for i, o in enumerate(outs):
        if not isinstance(o, Var):
            raise TypeError(f"grad: output {i} must be a Var, got {type(o).__name__}")
        if not o.dtype.is_floating:
            raise TypeError(f"grad: {_describe(o, i, 'output')} is not a float: only float values have gradients")
    for i, x in enumerate(ins):
        if not isinstance(x, Var):
            raise TypeError(f"grad: input {i} must be a Var, got {type(x).__name__}")
        if not x.dtype.is_floating:
            raise TypeError(f"grad: {_describe(x, i, 'input')} is not a float: only float values have gradients")
        if not x.requires_grad:
            raise ValueError(
                f"grad: {_describe(x, i, 'input')} does not require gradients, so no history links the outputs "
                "to it: set `x.requires_grad = True` (or call `x.fix_as_trainable()`) before computing the "
                "outputs from it")
    # cotangents of the outputs
    if grad_outputs is None:
        gos: list = [None] * len(outs)
    else:
        gos = list(grad_outputs) if isinstance(grad_outputs, (list, tuple)) else [grad_outputs]
        if len(gos) != len(outs):
            raise ValueError(f"grad: {len(gos)} grad_outputs given for {len(outs)} outputs")
    seeds = []
    for i, (o, go) in enumerate(zip(outs, gos)):
        if go is None:
            if o.size != 1:
                raise ValueError(f"grad: {_describe(o, i, 'output')} is not a scalar: pass grad_outputs "
                                 "(the cotangent of each non-scalar output)")
            go = ones(o.shape, o.dtype)
        else:
            go = asarray(go)
            if go.shape != o.shape:
                raise ValueError(f"grad: grad_outputs[{i}] has shape {go.shape}, expected the shape {o.shape} "
                                 f"of output {i}")
            if not go.dtype.is_floating:
                raise TypeError(f"grad: grad_outputs[{i}] must be a float, got {go.dtype}")
            if go.dtype != o.dtype:
                go = go.astype(o.dtype)
        seeds.append(go)
    if not any(o.requires_grad for o in outs):
        raise ValueError(
            "grad: no output depends on a value that requires gradients (requires_grad is False on all of "
            "them): mark the inputs with `requires_grad = True` or `fix_as_trainable()` before computing the "
            "outputs (an output cut by stop_gradient is a constant)")

    # ---- the graph between outputs and inputs: values that require grad, in topological order
    vars_by_id: dict[int, Var] = {}
    kids: dict[int, list] = {}
    order: list[int] = []  # post-order: inputs of a value come before it
    stack = [(o, False) for o in reversed(outs) if o.requires_grad]
    while stack:  # iterative DFS (graphs can be deep); a value is expanded once, finished after its inputs
        v, done = stack.pop()
        vid = v._id()
        if done:
            order.append(vid)
            continue
        if vid in vars_by_id:
            continue
        vars_by_id[vid] = v
        stack.append((v, True))
        ch = v._inputs if v._has_history else []
        kids[vid] = ch
        for c in ch:
            if c.requires_grad and c._id() not in vars_by_id:
                stack.append((c, False))

    want = {x._id(): i for i, x in enumerate(ins)}
    # values through which some input is reached: only their cotangents are worth computing
    relevant = set()
    for vid in order:
        if vid in want or any(c._id() in relevant for c in kids[vid]):
            relevant.add(vid)
    cts: dict[int, Var] = {}
    for o, s in zip(outs, seeds):
        if o.requires_grad:
            oid = o._id()
            cts[oid] = s if oid not in cts else cts[oid] + s
    results: dict[int, Var] = {}
    blocked: list[tuple[int, str]] = []  # (id of the value where the gradient stopped, why)

    for vid in reversed(order):
        ct = cts.pop(vid, None)
        if ct is None or vid not in relevant:
            continue
        if vid in want:
            results[vid] = ct
        v = vars_by_id[vid]
        if not v._has_history:
            continue
        op = v._op
        ins_v = kids[vid]
        if op in NON_DIFFERENTIABLE:
            blocked.append((vid, f"{op} ({NON_DIFFERENTIABLE[op]})"))
            continue
        if v._output_index in NON_DIFFERENTIABLE_OUTPUTS.get(op, ()):
            blocked.append((vid, f"output {v._output_index} of {op} (indices carry no gradient)"))
            continue
        rule = RULES.get(op)
        if rule is None:
            raise NotImplementedError(f"grad: no gradient rule for primitive '{op}'")
        n_out = OP_TABLE[op].n_outputs
        outs_v: list = [None] * max(n_out, v._output_index + 1)
        outs_v[v._output_index] = v
        needs = [c._id() in relevant for c in ins_v]
        if create_graph:
            gs = rule(ct, ins_v, outs_v, v._attrs, needs)
        else:  # the rule sees constants: its ops record no history and free their values at once
            gs = rule(ct, [stop_gradient(c) for c in ins_v], [o if o is None else stop_gradient(o) for o in outs_v],
                      v._attrs, needs)
        for k, (c, g) in enumerate(zip(ins_v, gs)):
            if not needs[k]:
                continue
            cid = c._id()
            if g is None or not c.dtype.is_floating:
                why = _WHY_NONE.get(op, {}).get(k)
                if why is None:
                    why = (f"input {k} of {op} is {c.dtype}: integer/bool values carry no gradient"
                           if not c.dtype.is_floating else f"input {k} of {op} is not differentiable")
                blocked.append((cid, why))
                continue
            if g.shape != c.shape:
                raise RuntimeError(f"grad: internal error: the rule of {op} gave a gradient of shape {g.shape} "
                                   f"for input {k} of shape {c.shape}")
            if g.dtype != c.dtype:
                g = g.astype(c.dtype)
            cts[cid] = g if cid not in cts else cts[cid] + g

    out: list[Var] = []
    for i, x in enumerate(ins):
        xid = x._id()
        g = results.get(xid)
        if g is None:
            if xid in vars_by_id:
                raise ValueError(
                    f"grad: the outputs depend on {_describe(x, i, 'input')} only through non-differentiable "
                    f"steps: {_blocking_reasons(xid, blocked, kids, vars_by_id)}")
            g = zeros(x.shape, x.dtype)
        out.append(_detached(g) if not create_graph else g)
    return out


def _blocking_reasons(xid: int, blocked: list, kids: dict, vars_by_id: dict) -> str:
    """The blocked steps from which input ``xid`` can be reached (what cut its gradient)."""
    parents: dict[int, list] = {}
    for p, ch in kids.items():
        for c in ch:
            parents.setdefault(c._id(), []).append(p)
    above = {xid}
    stack = [xid]
    while stack:
        for p in parents.get(stack.pop(), []):
            if p not in above:
                above.add(p)
                stack.append(p)
    reasons = []
    for vid, why in blocked:
        if vid in above and why not in reasons:
            reasons.append(why)
    return "; ".join(reasons[:5]) if reasons else "no gradient reaches it"


def value_and_grad(output: Var, inputs: Union[Var, Sequence[Var]], create_graph: bool = True) -> tuple:
    """``(output, grad(output, inputs))`` for a scalar output.

    >>> import mnn_expr as F
    >>> x = F.array(2.0); x.requires_grad = True
    >>> v, (g,) = value_and_grad(x * x, [x])
    >>> v.item(), g.item()
    (4.0, 4.0)
    """
    return output, grad(output, inputs, create_graph=create_graph)
