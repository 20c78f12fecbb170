"""Adagrad (torch semantics: ``lr_decay``, ``initial_accumulator_value``, ``eps``, ``weight_decay``)."""

from __future__ import annotations

from typing import Any

import mnn_expr as F

from .optimizer import Optimizer, Var, _decayed


class Adagrad(Optimizer):
    """Adagrad as ``torch.optim.Adagrad``: ``sum += g*g``, ``p -= lr/(1+(t-1)*lr_decay) * g/(sqrt(sum)+eps)``.

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> w = F.array(np.zeros(2, np.float32)); w.fix_as_trainable()
    >>> opt = optim.Adagrad([w], lr=0.5)
    >>> opt.apply([np.full(2, 2.0, np.float32)])
    >>> w.read().astype(float).round(4).tolist()
    [-0.5, -0.5]
    """

    def __init__(self, params: Any, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        for name, v in (("learning rate", lr), ("lr_decay", lr_decay), ("weight_decay", weight_decay),
                        ("initial_accumulator_value", initial_accumulator_value), ("eps", eps)):
            if v < 0:
                raise ValueError(f"Adagrad: invalid {name} {v}")
        super().__init__(params, dict(lr=float(lr), lr_decay=float(lr_decay), weight_decay=float(weight_decay),
                                      initial_accumulator_value=float(initial_accumulator_value), eps=float(eps),
                                      maximize=bool(maximize)))

    @staticmethod
    def _update(param: Var, grad: Var, state: dict, hp: dict) -> tuple[Var, dict]:
        """One Adagrad step: pure function of Vars returning the new parameter and state."""
        g = -grad if hp["maximize"] else grad
        g = _decayed(g, param, hp["weight_decay"])
        step = state.get("step", 0) + 1
        acc = state.get("sum")
        if acc is None:
            acc = F.full_like(param, hp["initial_accumulator_value"])
        acc = acc + g * g
        clr = hp["lr"] / (1 + (step - 1) * hp["lr_decay"])
        return param - g / (F.sqrt(acc) + hp["eps"]) * clr, {"step": step, "sum": acc}
