"""The optimiser base class: parameter groups, per-parameter state, updates.

Every algorithm is a *pure* function ``_update(param, grad, state, hp) ->
(new_param, new_state)`` written with Var ops, so a training step can later
be compiled or exported as one graph.  :meth:`Optimizer.apply` runs it for
every parameter and then makes the results the parameters' new values.

Vars are immutable values, so "updating a parameter in place" means
rebinding the user's handle: after ``opt.apply(grads)`` every parameter Var
the user holds refers to a fresh trainable leaf (``requires_grad`` kept, no
history).  In either mode the updates of one ``apply`` are recorded lazily
and computed in one native call (with the gradient graph they read, when the
gradients are still pending), so each parameter's elementwise chain runs as
one fused pass; the new values then share the computed buffers (no copy).

>>> import numpy as np, mnn_expr as F, mnn_optim as optim
>>> w = F.array(np.ones(3, np.float32)); w.fix_as_trainable()
>>> opt = optim.SGD([w], lr=0.1)
>>> opt.apply([np.ones(3, np.float32)])
>>> w.read().astype(float).round(4).tolist()
[0.9, 0.9, 0.9]
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Mapping

import numpy as np

import mnn_expr as F
from mnn_expr._var import value_leaf

Var = F.Var
_KIND_TRAINABLE = 2

# Regularisation methods (MNN's ``Regularization_Method``): how weight decay enters the gradient.
L2 = "L2"
L1 = "L1"
L1L2 = "L1L2"


class Regularization_Method:  # noqa: N801  (MNN spelling)
    """MNN's regularisation enum: ``L1``, ``L2`` (the default) or ``L1L2``."""

    L1 = L1
    L2 = L2
    L1L2 = L1L2


def _decayed(grad: Var, param: Var, weight_decay: float, method: str = L2) -> Var:
    """Gradient plus the weight-decay term (``wd*p`` for L2, ``wd*sign(p)`` for L1)."""
    if weight_decay == 0:
        return grad
    if method == L2:
        return grad + param * weight_decay
    if method == L1:
        return grad + F.sign(param) * weight_decay
    if method == L1L2:
        return grad + (param + F.sign(param)) * weight_decay
    raise ValueError(f"regularization_method must be 'L1', 'L2' or 'L1L2', got {method!r}")


def _leaf(v: Var) -> Var:
    """A computed Var as a history-free leaf (zero-copy unless lazy values are pending)."""
    if v._op is None and not v.requires_grad:
        return v
    return value_leaf(v)


def _params_of(obj: Any) -> list:
    """Parameters of a module (``.parameters()`` or ``.parameters``) or an iterable of Vars."""
    if isinstance(obj, Var):
        return [obj]
    params = getattr(obj, "parameters", None)
    if params is not None and not isinstance(obj, (list, tuple, dict)):
        params = params() if callable(params) else params
        if isinstance(params, Mapping):
            params = params.values()
        return list(params)
    if isinstance(obj, Mapping):  # e.g. named parameters
        return list(obj.values())
    return list(obj)


def _as_var_like(g: Any, p: Var) -> Var:
    if isinstance(g, Var):
        if g.dtype != p.dtype:
            g = g.astype(p.dtype)
    else:
        arr = np.asarray(g)
        g = F.array(np.ascontiguousarray(arr.astype(p.dtype.numpy if p.dtype.name != "bfloat16" else np.float32)))
        if g.dtype != p.dtype:
            g = g.astype(p.dtype)
    if tuple(g.shape) != tuple(p.shape):
        raise ValueError(f"gradient of shape {tuple(g.shape)} for a parameter of shape {tuple(p.shape)}")
    return g


class Optimizer:
    """Base class: parameter groups with per-group hyper-parameters and per-parameter state.

    ``params`` is a module (anything with ``.parameters()``/``.parameters``), an
    iterable of Vars, or a list of group dicts ``[{"params": [...], "lr": ...}, ...]``
    (torch's form); hyper-parameters missing from a group come from ``defaults``.
    Subclasses define ``_update(param, grad, state, hp)``.
    """

    def __init__(self, params: Any, defaults: dict) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self._states: list[dict] = []  # aligned with the flattened parameters
        if isinstance(params, Mapping):
            params = [params]
        items = params if isinstance(params, (list, tuple)) else _params_of(params)
        if not len(items):
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if len(items) and all(isinstance(x, Mapping) for x in items):
            for g in items:
                self.add_param_group(dict(g))
        else:
            self.add_param_group({"params": _params_of(items) if not isinstance(items, list) else items})

    # -- groups and parameters ---------------------------------------------------------
    def add_param_group(self, group: dict) -> None:
        """Adds a group ``{"params": ..., **hyper_parameters}`` (torch's ``add_param_group``)."""
        params = _params_of(group["params"])
        for p in params:
            if not isinstance(p, Var):
                raise TypeError(f"{type(self).__name__}: parameters must be Vars, got {type(p).__name__}")
            if not p.dtype.is_floating:
                raise TypeError(f"{type(self).__name__}: only float Vars can be optimised, got {p.dtype}")
        seen = {id(q) for q in self.parameters()}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr", "max_lr", "min_lr",
                                                      "max_momentum", "base_momentum"}
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown hyper-parameter(s) {sorted(unknown)}")
        g = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        g["params"] = params
        self._check_group(g)
        self.param_groups.append(g)
        self._states.extend({} for _ in params)

    def _check_group(self, group: dict) -> None:
        if group.get("lr", 0) < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {group['lr']}")

    def parameters(self) -> list:
        """All parameters, group by group."""
        return [p for g in self.param_groups for p in g["params"]]

    @property
    def state(self) -> dict:
        """Per-parameter state, keyed by the parameter's index over all groups."""
        return {i: s for i, s in enumerate(self._states) if s}

    # -- MNN's properties (first group; setting changes every group) -------------------
    def _get_hp(self, name: str) -> Any:
        return self.param_groups[0][name]

    def _set_hp(self, name: str, value: Any) -> None:
        for g in self.param_groups:
            g[name] = value

    learning_rate = property(lambda self: self._get_hp("lr"), lambda self, v: self._set_hp("lr", float(v)),
                             doc="Learning rate of the first group; setting it sets every group's (MNN).")
    weight_decay = property(lambda self: self._get_hp("weight_decay"),
                            lambda self, v: self._set_hp("weight_decay", float(v)),
                            doc="Weight decay of the first group; setting it sets every group's (MNN).")

    # -- updates -------------------------------------------------------------------------
    def _update(self, param: Var, grad: Var, state: dict, hp: dict) -> tuple[Var, dict]:
        raise NotImplementedError

    def _grads_list(self, grads: Any, params: list) -> list:
        if isinstance(grads, Mapping):  # keyed by parameter index (or by the Vars, were they hashable)
            out: list = [None] * len(params)
            pos = {id(p): i for i, p in enumerate(params)}
            for k, v in grads.items():
                i = pos.get(id(k)) if isinstance(k, Var) else k
                if not isinstance(i, int) or not 0 <= i < len(params):
                    raise KeyError(f"{type(self).__name__}.apply: gradient key {k!r} names no parameter")
                out[i] = v
            return out
        grads = list(grads)
        if grads and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], Var) for x in grads):
            by_id = {id(k): v for k, v in grads}
            return [by_id.get(id(p)) for p in params]
        if len(grads) != len(params):
            raise ValueError(f"{type(self).__name__}.apply: got {len(grads)} gradients for {len(params)} parameters")
        return grads

    def apply(self, grads: Any) -> None:
        """Updates every parameter from its gradient (the PyTorch-style path).

        ``grads`` is a list aligned with :meth:`parameters`, a dict keyed by
        parameter index, or ``(param, grad)`` pairs; a ``None`` gradient
        skips its parameter (and its state), as in torch.  Gradients may be Vars or
        numpy arrays.  Each parameter handle is rebound to its new value.
        """
        params = self.parameters()
        grads = self._grads_list(grads, params)
        results = []
        i = 0
        # The updates are recorded lazily (whatever the mode) and computed in one native call,
        # so the executor fuses each parameter's elementwise chain into one pass.
        if F.is_tracing():  # inside F.compile: the new values stay symbolic; the compiled program computes them
            self._apply_traced(params, grads)
            return
        with F.lazy_eval(True):
            for group in self.param_groups:
                hp = {k: v for k, v in group.items() if k != "params"}
                for p in group["params"]:
                    g = grads[i]
                    if g is not None:
                        new_p, new_s = self._update(value_leaf(p), _as_var_like(g, p), dict(self._states[i]), hp)
                        results.append((i, p, new_p, new_s))
                    i += 1
            pending = [v for _, _, new_p, new_s in results for v in (new_p, *new_s.values()) if isinstance(v, Var)]
            if pending:
                F.evaluate(*pending)
        for i, p, new_p, new_s in results:
            self._states[i] = {k: _leaf(v) if isinstance(v, Var) else v for k, v in new_s.items()}
            trainable = p.requires_grad
            kind = p._kind
            new = value_leaf(new_p)
            if kind == _KIND_TRAINABLE or trainable:
                new._set_kind(_KIND_TRAINABLE)
                new.requires_grad = True
            p._rebind(new)

    def _apply_traced(self, params: list, grads: list) -> None:
        i = 0
        for group in self.param_groups:
            hp = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                g = grads[i]
                if g is not None:
                    new_p, new_s = self._update(p, _as_var_like(g, p), dict(self._states[i]), hp)
                    self._states[i] = new_s
                    p._rebind(new_p)
                i += 1

    def step(self, loss: Any = None) -> Any:
        """MNN style: differentiates ``loss`` with respect to the parameters and applies the update.

        ``loss`` may also be a closure returning the loss (torch's form).  Returns the loss.
        """
        if callable(loss) and not isinstance(loss, Var):
            loss = loss()
        params = self.parameters()
        if loss is None:
            grads = [getattr(p, "grad", None) for p in params]
            if all(g is None for g in grads):
                raise TypeError(f"{type(self).__name__}.step: pass the loss (or use apply(grads))")
            self.apply(grads)
            return None
        grad_fn = getattr(F, "grad", None)
        if grad_fn is None:
            raise NotImplementedError(
                f"{type(self).__name__}.step(loss) needs mnn_expr.grad (autograd), which this build lacks; "
                "compute the gradients yourself and call apply(grads)")
        try:  # no need to keep the backward graph: the gradients are consumed here
            accepts_flag = "create_graph" in inspect.signature(grad_fn).parameters
        except (TypeError, ValueError):
            accepts_flag = False
        grads = grad_fn(loss, params, create_graph=False) if accepts_flag else grad_fn(loss, params)
        self.apply(list(grads))
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Does nothing: gradients are values returned by ``grad``, never accumulated (torch compatibility)."""

    # -- state dicts -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"state": {index: {name: numpy array or number}}, "param_groups": [...]}`` (torch's layout)."""
        state = {}
        for i, s in enumerate(self._states):
            if s:
                state[i] = {k: (np.array(v.read()) if isinstance(v, Var) else copy.deepcopy(v)) for k, v in s.items()}
        groups = []
        start = 0
        for g in self.param_groups:
            d = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            d["params"] = list(range(start, start + len(g["params"])))
            start += len(g["params"])
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores hyper-parameters and state saved by :meth:`state_dict` (checks group sizes and shapes).

        A ``torch.optim`` state dict of the same algorithm loads too (tensors become Vars).
        """
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state has {len(groups)} parameter groups, "
                             f"this optimiser {len(self.param_groups)}")
        for mine, theirs in zip(self.param_groups, groups):
            if len(theirs["params"]) != len(mine["params"]):
                raise ValueError("loaded state has a parameter group of a different size")
        params = self.parameters()
        states: list[dict] = [{} for _ in params]
        for key, s in state_dict["state"].items():
            i = int(key)
            if not 0 <= i < len(params):
                raise ValueError(f"loaded state names parameter {i}; there are {len(params)}")
            p = params[i]
            out = {}
            for k, v in s.items():
                if hasattr(v, "detach") and hasattr(v, "numpy"):  # a torch tensor (torch's state dicts load too)
                    v = np.array(v.detach().cpu().numpy())
                if isinstance(v, Var):
                    v = np.array(v.read())
                if isinstance(v, np.ndarray) and k == "step" and v.ndim == 0:
                    v = int(v)
                if isinstance(v, np.ndarray):
                    if v.shape != tuple(p.shape):
                        raise ValueError(f"state {k!r} of parameter {i} has shape {v.shape}, expected {tuple(p.shape)}")
                    out[k] = F.array(np.ascontiguousarray(v)).astype(p.dtype)
                else:
                    out[k] = copy.deepcopy(v)
            states[i] = out
        for mine, theirs in zip(self.param_groups, groups):
            for k, v in theirs.items():
                if k != "params":
                    mine[k] = copy.deepcopy(v)
        self._states = states

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"

