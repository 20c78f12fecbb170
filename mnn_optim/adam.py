"""Adam, AdamW (decoupled weight decay) and MNN's ``ADAM`` spelling (torch semantics)."""

from __future__ import annotations

import math
from typing import Any

import mnn_expr as F

from .optimizer import L2, Optimizer, Var, _decayed


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam`` (``amsgrad`` and ``maximize`` included).

    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g*g``, ``p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``,
    with ``g = grad + wd*p`` (coupled L2 decay; see :class:`AdamW` for decoupled decay).

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> w = F.array(np.zeros(2, np.float32)); w.fix_as_trainable()
    >>> opt = optim.Adam([w], lr=0.1)
    >>> opt.apply([np.ones(2, np.float32)])
    >>> w.read().astype(float).round(4).tolist()
    [-0.1, -0.1]
    """

    _decoupled = False

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 learning_rate: float | None = None, regularization_method: str = L2) -> None:
        if learning_rate is not None:
            lr = learning_rate
        name = type(self).__name__
        if lr < 0:
            raise ValueError(f"{name}: invalid learning rate {lr}")
        if eps < 0:
            raise ValueError(f"{name}: invalid eps {eps}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{name}: betas must lie in [0, 1), got {betas}")
        if weight_decay < 0:
            raise ValueError(f"{name}: invalid weight_decay {weight_decay}")
        super().__init__(params, dict(lr=float(lr), betas=(float(betas[0]), float(betas[1])), eps=float(eps),
                                      weight_decay=float(weight_decay), amsgrad=bool(amsgrad), maximize=bool(maximize),
                                      regularization_method=regularization_method))

    # MNN's properties (first group; setting changes every group)
    @property
    def momentum(self) -> float:
        """beta1 of the first group (MNN's ``momentum``)."""
        return self._get_hp("betas")[0]

    @momentum.setter
    def momentum(self, v: float) -> None:
        for g in self.param_groups:
            g["betas"] = (float(v), g["betas"][1])

    @property
    def momentum2(self) -> float:
        """beta2 of the first group (MNN's ``momentum2``)."""
        return self._get_hp("betas")[1]

    @momentum2.setter
    def momentum2(self, v: float) -> None:
        for g in self.param_groups:
            g["betas"] = (g["betas"][0], float(v))

    eps = property(lambda self: self._get_hp("eps"), lambda self, v: self._set_hp("eps", float(v)),
                   doc="eps of the first group; setting it sets every group's (MNN).")

    @classmethod
    def _update(cls, param: Var, grad: Var, state: dict, hp: dict) -> tuple[Var, dict]:
        """One Adam/AdamW step: pure function of Vars returning the new parameter and state.

        The step count is a Python int in the state (bias corrections are host scalars); inside
        F.compile it is a 0-d Var, an input of the compiled program.
        """
        beta1, beta2 = hp["betas"]
        lr, eps, wd = hp["lr"], hp["eps"], hp["weight_decay"]
        g = -grad if hp["maximize"] else grad
        if cls._decoupled:
            if wd != 0:
                param = param * (1 - lr * wd)
        else:
            g = _decayed(g, param, wd, hp["regularization_method"])
        step = state.get("step", 0) + 1
        m = state.get("exp_avg")
        v = state.get("exp_avg_sq")
        m = g * (1 - beta1) if m is None else m + (g - m) * (1 - beta1)
        v = g * g * (1 - beta2) if v is None else v * beta2 + g * g * (1 - beta2)
        new_state = {"step": step, "exp_avg": m, "exp_avg_sq": v}
        if isinstance(step, Var):  # traced by F.compile: the count is an input of the program
            s = step.astype("float64")
            bias_correction1 = (1 - F.power(beta1, s)).astype(param.dtype)
            bias_correction2_sqrt = F.sqrt(1 - F.power(beta2, s)).astype(param.dtype)
        else:
            bias_correction1 = 1 - beta1 ** step
            bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
        if hp["amsgrad"]:
            vmax = state.get("max_exp_avg_sq")
            vmax = v if vmax is None else F.maximum(vmax, v)
            new_state["max_exp_avg_sq"] = vmax
            denom = F.sqrt(vmax) / bias_correction2_sqrt + eps
        else:
            denom = F.sqrt(v) / bias_correction2_sqrt + eps
        return param - m / denom * (lr / bias_correction1), new_state


class AdamW(Adam):
    """AdamW as ``torch.optim.AdamW``: Adam with decoupled weight decay ``p *= 1 - lr*wd`` (default 1e-2).

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> w = F.array(np.ones(2, np.float32)); w.fix_as_trainable()
    >>> opt = optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> opt.apply([np.zeros(2, np.float32)])
    >>> w.read().astype(float).round(4).tolist()
    [0.95, 0.95]
    """

    _decoupled = True

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 learning_rate: float | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, learning_rate=learning_rate)


class ADAM(Adam):
    """MNN's spelling and signature: ``ADAM(module, learning_rate=1e-3, momentum=0.9, momentum2=0.999,
    weight_decay=0.0, eps=1e-8, regularization_method=L2)``.

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> w = F.array(np.zeros(2, np.float32)); w.fix_as_trainable()
    >>> opt = optim.ADAM([w], 0.1)
    >>> (opt.learning_rate, opt.momentum, opt.momentum2)
    (0.1, 0.9, 0.999)
    """

    def __init__(self, module: Any, learning_rate: float = 1e-3, momentum: float = 0.9, momentum2: float = 0.999,
                 weight_decay: float = 0.0, eps: float = 1e-8, regularization_method: str = L2) -> None:
        super().__init__(module, learning_rate, (momentum, momentum2), eps, weight_decay,
                         regularization_method=regularization_method)
