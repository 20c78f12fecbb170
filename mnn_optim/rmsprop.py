"""RMSprop (torch semantics: ``alpha``, ``eps``, ``momentum``, ``centered``, ``weight_decay``)."""

from __future__ import annotations

from typing import Any

import mnn_expr as F

from .optimizer import Optimizer, Var, _decayed


class RMSprop(Optimizer):
    """RMSprop as ``torch.optim.RMSprop``.

    ``sq = alpha*sq + (1-alpha)*g*g``; centred: ``ga = alpha*ga + (1-alpha)*g`` and
    ``avg = sqrt(sq - ga*ga) + eps`` (else ``sqrt(sq) + eps``); with momentum
    ``buf = momentum*buf + g/avg`` and ``p -= lr*buf``, else ``p -= lr*g/avg``.

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> w = F.array(np.zeros(2, np.float32)); w.fix_as_trainable()
    >>> opt = optim.RMSprop([w], lr=0.01, alpha=0.75)
    >>> opt.apply([np.ones(2, np.float32)])
    >>> w.read().astype(float).round(4).tolist()
    [-0.02, -0.02]
    """

    def __init__(self, params: Any, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        for name, v in (("learning rate", lr), ("eps", eps), ("momentum", momentum),
                        ("weight_decay", weight_decay), ("alpha", alpha)):
            if v < 0:
                raise ValueError(f"RMSprop: invalid {name} {v}")
        super().__init__(params, dict(lr=float(lr), alpha=float(alpha), eps=float(eps),
                                      weight_decay=float(weight_decay), momentum=float(momentum),
                                      centered=bool(centered), maximize=bool(maximize)))

    momentum = property(lambda self: self._get_hp("momentum"), lambda self, v: self._set_hp("momentum", float(v)),
                        doc="Momentum of the first group; setting it sets every group's.")

    @staticmethod
    def _update(param: Var, grad: Var, state: dict, hp: dict) -> tuple[Var, dict]:
        """One RMSprop step: pure function of Vars returning the new parameter and state."""
        alpha, eps, lr, momentum = hp["alpha"], hp["eps"], hp["lr"], hp["momentum"]
        g = -grad if hp["maximize"] else grad
        g = _decayed(g, param, hp["weight_decay"])
        sq = state.get("square_avg")
        sq = g * g * (1 - alpha) if sq is None else sq * alpha + g * g * (1 - alpha)
        new_state = {"step": state.get("step", 0) + 1, "square_avg": sq}
        if hp["centered"]:
            ga = state.get("grad_avg")
            ga = g * (1 - alpha) if ga is None else ga + (g - ga) * (1 - alpha)
            new_state["grad_avg"] = ga
            avg = F.sqrt(sq - ga * ga) + eps
        else:
            avg = F.sqrt(sq) + eps
        if momentum > 0:
            buf = state.get("momentum_buffer")
            buf = g / avg if buf is None else buf * momentum + g / avg
            new_state["momentum_buffer"] = buf
            return param - buf * lr, new_state
        return param - g / avg * lr, new_state
