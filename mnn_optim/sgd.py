"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (torch semantics)."""

from __future__ import annotations

from typing import Any

from .optimizer import L2, Optimizer, Var, _decayed


class SGD(Optimizer):
    """SGD as ``torch.optim.SGD``: with ``g = grad + wd*p``, ``buf = g`` on the first step, then
    ``buf = momentum*buf + (1-dampening)*g``; the step uses ``g + momentum*buf`` (Nesterov) or
    ``buf``, and ``p -= lr*step``.

    Arguments follow torch's order; MNN's ``SGD(module, learning_rate, momentum, weight_decay)``
    works with ``learning_rate=`` and ``weight_decay=`` given by keyword (MNN's default momentum
    is 0.9; here it is torch's 0).

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> w = F.array(np.zeros(2, np.float32)); w.fix_as_trainable()
    >>> opt = optim.SGD([w], lr=0.5, momentum=0.9)
    >>> opt.apply([np.ones(2, np.float32)]); opt.apply([np.ones(2, np.float32)])
    >>> w.read().tolist()
    [-1.4500000476837158, -1.4500000476837158]
    """

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 learning_rate: float | None = None, regularization_method: str = L2) -> None:
        if learning_rate is not None:
            lr = learning_rate
        if lr < 0:
            raise ValueError(f"SGD: invalid learning rate {lr}")
        if momentum < 0:
            raise ValueError(f"SGD: invalid momentum {momentum}")
        if weight_decay < 0:
            raise ValueError(f"SGD: invalid weight_decay {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=float(lr), momentum=float(momentum), dampening=float(dampening),
                                      weight_decay=float(weight_decay), nesterov=bool(nesterov),
                                      maximize=bool(maximize), regularization_method=regularization_method))

    momentum = property(lambda self: self._get_hp("momentum"), lambda self, v: self._set_hp("momentum", float(v)),
                        doc="Momentum of the first group; setting it sets every group's (MNN).")

    @staticmethod
    def _update(param: Var, grad: Var, state: dict, hp: dict) -> tuple[Var, dict]:
        """One SGD step: pure function of Vars returning the new parameter and state."""
        g = -grad if hp["maximize"] else grad
        g = _decayed(g, param, hp["weight_decay"], hp["regularization_method"])
        momentum = hp["momentum"]
        new_state = dict(state)
        if momentum != 0:
            buf = state.get("momentum_buffer")
            buf = g if buf is None else buf * momentum + g * (1 - hp["dampening"])
            new_state["momentum_buffer"] = buf
            g = g + buf * momentum if hp["nesterov"] else buf
        return param - g * hp["lr"], new_state
