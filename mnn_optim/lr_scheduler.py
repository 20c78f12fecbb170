"""Learning-rate schedules with torch's semantics (``step()``, ``get_last_lr()``, ``state_dict``).

A scheduler changes ``group["lr"]`` of its optimiser's parameter groups; constructing one
applies the schedule's first value (as torch does).  Call ``step()`` after each
optimiser update (or epoch).

>>> import numpy as np, mnn_expr as F, mnn_optim as optim
>>> w = F.array(np.zeros(1, np.float32)); w.fix_as_trainable()
>>> opt = optim.SGD([w], lr=1.0)
>>> sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
>>> lrs = []
>>> for _ in range(5):
...     sched.step(); lrs.append(sched.get_last_lr()[0])
>>> lrs
[1.0, 0.5, 0.5, 0.25, 0.25]
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from typing import Any, Iterable, Optional

__all__ = ["LRScheduler", "LambdaLR", "ConstantLR", "PolynomialLR", "SequentialLR", "StepLR", "MultiStepLR",
           "ExponentialLR", "CosineAnnealingLR", "LinearLR",
           "LinearWarmup", "OneCycleLR", "ReduceLROnPlateau"]


def _per_group(name: str, optimizer: Any, value: Any) -> list:
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"expected {n} values for {name}, got {len(value)}")
        return list(value)
    return [value] * n


class LRScheduler:
    """Base class: ``get_lr()`` computes the next rates from the groups' current ones (torch's chainable form)."""

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(optimizer).__name__} is not an optimiser")
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        else:
            for i, g in enumerate(optimizer.param_groups):
                if "initial_lr" not in g:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                                   f"a scheduler with last_epoch={last_epoch}")
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def _current(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def step(self, epoch: Optional[int] = None) -> None:
        """Advances the schedule one step (or to ``epoch``, via the closed form where there is one)."""
        self._step_count += 1
        self._update_lr(epoch)

    def _update_lr(self, epoch: Optional[int] = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_get_closed_form_lr", None)
            values = closed() if closed is not None else self.get_lr()
        for g, lr in zip(self.optimizer.param_groups, values):
            g["lr"] = lr
        self._last_lr = self._current()

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step()`` set, one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Every attribute but the optimiser."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores attributes saved by :meth:`state_dict`."""
        self.__dict__.update(state_dict)


class LambdaLR(LRScheduler):
    """Sets the rate to ``base_lr * lr_lambda(step)`` (one function, or one per group).

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0)
    >>> sched = optim.lr_scheduler.LambdaLR(opt, lambda t: 1 / (t + 1))
    >>> [round(sched.step() or sched.get_last_lr()[0], 4) for _ in range(3)]
    [0.5, 0.3333, 0.25]
    """

    def __init__(self, optimizer: Any, lr_lambda: Any, last_epoch: int = -1) -> None:
        self.lr_lambdas = _per_group("lr_lambda", optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [b * f(self.last_epoch) for f, b in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self) -> dict:
        """Every attribute but the optimiser and the functions."""
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}


class ConstantLR(LRScheduler):
    """Multiplies the rate by ``factor`` for the first ``total_iters`` steps.

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0)
    >>> sched = optim.lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=2)
    >>> [round(sched.step() or sched.get_last_lr()[0], 4) for _ in range(3)]
    [0.5, 1.0, 1.0]
    """

    def __init__(self, optimizer: Any, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1) -> None:
        if factor > 1.0 or factor < 0:
            raise ValueError("ConstantLR: factor must lie in [0, 1]")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        cur = self._current()
        if self.last_epoch == 0:
            return [lr * self.factor for lr in cur]
        if self.last_epoch != self.total_iters:
            return cur
        return [lr * (1.0 / self.factor) for lr in cur]

    def _get_closed_form_lr(self) -> list[float]:
        return [b * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor)) for b in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Decays the rate as ``(1 - t/total_iters) ** power`` down to 0 at ``total_iters``.

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0)
    >>> sched = optim.lr_scheduler.PolynomialLR(opt, total_iters=4, power=2.0)
    >>> [round(sched.step() or sched.get_last_lr()[0], 4) for _ in range(4)]
    [0.5625, 0.25, 0.0625, 0.0]
    """

    def __init__(self, optimizer: Any, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1) -> None:
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        cur = self._current()
        if self._is_initial or self.last_epoch > self.total_iters:
            return cur
        t, n = self.last_epoch, self.total_iters
        f = ((1.0 - t / n) / (1.0 - (t - 1) / n)) ** self.power
        return [lr * f for lr in cur]

    def _get_closed_form_lr(self) -> list[float]:
        return [b * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power
                for b in self.base_lrs]


class SequentialLR(LRScheduler):
    """Runs ``schedulers[i]`` between ``milestones[i-1]`` and ``milestones[i]`` (e.g. warm-up, then cosine).

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0)
    >>> lr_scheduler = optim.lr_scheduler
    >>> sched = lr_scheduler.SequentialLR(opt, [lr_scheduler.LinearLR(opt, 0.5, total_iters=2),
    ...                                         lr_scheduler.ExponentialLR(opt, 0.5)], milestones=[2])
    >>> [round(sched.step() or sched.get_last_lr()[0], 4) for _ in range(4)]
    [0.75, 1.0, 0.5, 0.25]
    """

    def __init__(self, optimizer: Any, schedulers: list, milestones: list, last_epoch: int = -1) -> None:
        if not schedulers:
            raise ValueError("SequentialLR: expects at least one scheduler")
        for i, sch in enumerate(schedulers):
            if isinstance(sch, ReduceLROnPlateau):
                raise ValueError(f"SequentialLR: scheduler {i} is a ReduceLROnPlateau, which needs a metric")
            if getattr(sch, "optimizer", None) is not optimizer:
                raise ValueError(f"SequentialLR: scheduler {i} belongs to another optimiser")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: {len(schedulers)} schedulers need {len(schedulers) - 1} milestones, "
                             f"got {len(milestones)}")
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"]
        for sch in self._schedulers:  # undo the initial steps the schedulers took when built
            sch.last_epoch -= 1
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = self._schedulers[idx].get_last_lr()

    def step(self) -> None:  # type: ignore[override]
        """Advances the active scheduler (restarting the next one from its start at a milestone)."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        sch = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            sch._update_lr(0)
        else:
            sch.step()
        self._last_lr = sch.get_last_lr()

    def state_dict(self) -> dict:
        """Own attributes plus each scheduler's state dict."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        d["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return d

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores what :meth:`state_dict` saved."""
        state_dict = dict(state_dict)
        subs = state_dict.pop("_schedulers")
        self.__dict__.update(state_dict)
        for s, d in zip(self._schedulers, subs):
            s.load_state_dict(d)


class StepLR(LRScheduler):
    """Multiplies the rate by ``gamma`` every ``step_size`` steps.

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0)
    >>> sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    >>> [round(sched.step() or sched.get_last_lr()[0], 4) for _ in range(4)]
    [1.0, 0.1, 0.1, 0.01]
    """

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current()
        return [lr * self.gamma for lr in self._current()]

    def _get_closed_form_lr(self) -> list[float]:
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiplies the rate by ``gamma`` at each milestone (repeated milestones multiply again).

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0)
    >>> sched = optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 3], gamma=0.5)
    >>> [round(sched.step() or sched.get_last_lr()[0], 4) for _ in range(4)]
    [0.5, 0.5, 0.25, 0.25]
    """

    def __init__(self, optimizer: Any, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._current()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._current()]

    def _get_closed_form_lr(self) -> list[float]:
        ms = sorted(self.milestones.elements())
        return [b * self.gamma ** bisect_right(ms, self.last_epoch) for b in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiplies the rate by ``gamma`` every step.

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0)
    >>> sched = optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    >>> [round(sched.step() or sched.get_last_lr()[0], 4) for _ in range(3)]
    [0.5, 0.25, 0.125]
    """

    def __init__(self, optimizer: Any, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current()
        return [lr * self.gamma for lr in self._current()]

    def _get_closed_form_lr(self) -> list[float]:
        return [b * self.gamma ** self.last_epoch for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the base rate to ``eta_min`` over ``T_max`` steps (then back up, as torch).

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0)
    >>> sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    >>> [round(sched.step() or sched.get_last_lr()[0], 4) for _ in range(5)]
    [0.8536, 0.5, 0.1464, 0.0, 0.1464]
    """

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:  # noqa: N803
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        cur = self._current()
        if self._is_initial:
            return cur
        if self._step_count == 1 and self.last_epoch > 0:
            return [self.eta_min + (b - self.eta_min) * (1 + math.cos(self.last_epoch * math.pi / self.T_max)) / 2
                    for b in self.base_lrs]
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return [lr + (b - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                    for b, lr in zip(self.base_lrs, cur)]
        return [(1 + math.cos(math.pi * self.last_epoch / self.T_max))
                / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max)) * (lr - self.eta_min) + self.eta_min
                for lr in cur]

    def _get_closed_form_lr(self) -> list[float]:
        return [self.eta_min + (b - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for b in self.base_lrs]


class LinearLR(LRScheduler):
    """Scales the rate linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` steps (warm-up).

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0)
    >>> sched = optim.lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> [round(sched.step() or sched.get_last_lr()[0], 4) for _ in range(4)]
    [0.5, 0.75, 1.0, 1.0]
    """

    def __init__(self, optimizer: Any, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("LinearLR: start_factor must lie in (0, 1]")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("LinearLR: end_factor must lie in [0, 1]")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        cur = self._current()
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in cur]
        if self._is_initial or self.last_epoch > self.total_iters:
            return cur
        d = self.end_factor - self.start_factor
        return [lr * (1.0 + d / (self.total_iters * self.start_factor + (self.last_epoch - 1) * d)) for lr in cur]

    def _get_closed_form_lr(self) -> list[float]:
        d = self.end_factor - self.start_factor
        return [b * (self.start_factor + d * min(self.total_iters, self.last_epoch) / self.total_iters)
                for b in self.base_lrs]


class LinearWarmup(LinearLR):
    """Linear warm-up from ``start_factor * lr`` to ``lr`` over ``warmup_steps`` steps (a :class:`LinearLR`).

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0)
    >>> sched = optim.lr_scheduler.LinearWarmup(opt, warmup_steps=4, start_factor=0.2)
    >>> [round(sched.step() or sched.get_last_lr()[0], 4) for _ in range(5)]
    [0.4, 0.6, 0.8, 1.0, 1.0]
    """

    def __init__(self, optimizer: Any, warmup_steps: int, start_factor: float = 0.1, last_epoch: int = -1) -> None:
        super().__init__(optimizer, start_factor, 1.0, warmup_steps, last_epoch)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (torch semantics): warm up to ``max_lr`` then anneal far below the start,
    cycling the momentum (or Adam's beta1) the other way when ``cycle_momentum``.

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0, momentum=0.9)
    >>> sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=6)
    >>> [round(sched.step() or sched.get_last_lr()[0], 4) for _ in range(5)]
    [0.9944, 0.8117, 0.4626, 0.1335, 0.0]
    """

    def __init__(self, optimizer: Any, max_lr: Any, total_steps: Optional[int] = None, epochs: Optional[int] = None,
                 steps_per_epoch: Optional[int] = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: Any = 0.85, max_momentum: Any = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError(f"OneCycleLR: expected a positive integer total_steps, got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not all(isinstance(n, int) and n > 0 for n in (epochs, steps_per_epoch)):
                raise ValueError("OneCycleLR: epochs and steps_per_epoch must be positive integers")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: expected a float pct_start in [0, 1], got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        t = self.total_steps
        if three_phase:
            self._phases = [
                (float(pct_start * t) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * t) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (t - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._phases = [
                (float(pct_start * t) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (t - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for m, g in zip(max_lrs, optimizer.param_groups):
                g["initial_lr"] = m / div_factor
                g["max_lr"] = m
                g["min_lr"] = g["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            defaults = getattr(optimizer, "defaults", {})
            if "momentum" not in defaults and "betas" not in defaults:
                raise ValueError("OneCycleLR: cycle_momentum needs an optimiser with momentum or betas")
            self.use_beta1 = "betas" in defaults
            if last_epoch == -1:
                for mx, bs, g in zip(_per_group("max_momentum", optimizer, max_momentum),
                                     _per_group("base_momentum", optimizer, base_momentum), optimizer.param_groups):
                    if self.use_beta1:
                        g["betas"] = (mx, *g["betas"][1:])
                    else:
                        g["momentum"] = mx
                    g["max_momentum"] = mx
                    g["base_momentum"] = bs
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; total_steps is {self.total_steps}")
        lrs = []
        for g in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr0, lr1, m0, m1) in enumerate(self._phases):
                if step <= end or i == len(self._phases) - 1:
                    pct = (step - start) / (end - start)
                    lr = self._anneal(g[lr0], g[lr1], pct)
                    mom = self._anneal(g[m0], g[m1], pct) if self.cycle_momentum else None
                    break
                start = end
            lrs.append(lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    g["betas"] = (mom, *g["betas"][1:])
                else:
                    g["momentum"] = mom
        return lrs


class ReduceLROnPlateau:
    """Divides the rate by ``1/factor`` when a metric stopped improving for ``patience`` steps (torch semantics).

    ``step(metric)`` takes the metric (e.g. the validation loss).

    >>> import numpy as np, mnn_expr as F, mnn_optim as optim
    >>> opt = optim.SGD([F.array(np.zeros(1, np.float32))], lr=1.0)
    >>> sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    >>> [round(sched.step(m) or sched.get_last_lr()[0], 4) for m in [3, 2, 2, 2, 2, 1]]
    [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    """

    def __init__(self, optimizer: Any, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr: Any = 0,
                 eps: float = 1e-8) -> None:
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau: factor must be < 1.0")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.optimizer = optimizer
        self.factor = factor
        if isinstance(min_lr, (list, tuple)):
            self.min_lrs = _per_group("min_lr", optimizer, min_lr)
        else:
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < best * (1.0 - self.threshold) if self.threshold_mode == "rel" else a < best - self.threshold
        return a > best * (self.threshold + 1.0) if self.threshold_mode == "rel" else a > best + self.threshold

    def step(self, metrics: Any) -> None:
        """Records one value of the metric and reduces the rates when it has plateaued."""
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for i, g in enumerate(self.optimizer.param_groups):
                old = float(g["lr"])
                new = max(old * self.factor, self.min_lrs[i])
                if old - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates after the last ``step()``, one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Every attribute but the optimiser."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores attributes saved by :meth:`state_dict`."""
        self.__dict__.update(state_dict)
