"""Sample transforms: Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToFloat, ToTensor, ToVar.

Transforms take one image, channel-first ``(C, H, W)`` (``(H, W)`` for the crop and
flip too), as a numpy array or a Var, and return the same kind.  Random transforms
draw from their own numpy Generator (``seed``); in DataLoader workers it is reseeded
from the worker's seed, so workers do not repeat each other's augmentations.

>>> import numpy as np
>>> from mnn_nn.data import transforms as T
>>> img = np.full((4, 4, 3), 255, np.uint8)                 # HWC uint8
>>> t = T.Compose([T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
>>> out = t(img)
>>> out.shape, out.dtype.name, float(out.max())
((3, 4, 4), 'float32', 1.0)
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Sequence
from typing import Any, Callable, Union

import numpy as np

from mnn_expr import Var, asarray, float32

from .sampler import SeedLike

__all__ = ["Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "ToFloat",
           "ToTensor", "ToVar", "Lambda"]

_RANDOM: weakref.WeakSet = weakref.WeakSet()


def _reseed_random_transforms(worker_seed: int) -> None:
    """Called in each DataLoader worker: a distinct, reproducible stream per transform and worker."""
    for t in list(_RANDOM):
        t.rng = np.random.default_rng([t._entropy, worker_seed % (1 << 63)])


class _RandomTransform:
    def __init__(self, seed: SeedLike) -> None:
        if isinstance(seed, np.random.Generator):
            self.rng = seed
            self._entropy = int(seed.integers(0, 1 << 62))
        else:
            if seed is not None and not isinstance(seed, (int, np.integer)):
                raise TypeError(f"{type(self).__name__}: seed must be an int, a numpy Generator or None")
            self._entropy = int(np.random.SeedSequence(seed).generate_state(2, np.uint64)[0] >> 2)
            self.rng = np.random.default_rng(seed)
        _RANDOM.add(self)


def _numpy(x: Any) -> tuple:
    return (x.read(), True) if isinstance(x, Var) else (np.asarray(x), False)


def _back(a: np.ndarray, was_var: bool) -> Any:
    return asarray(np.ascontiguousarray(a)) if was_var else a


class Compose:
    """Applies transforms one after the other.

    >>> Compose([lambda x: x + 1, lambda x: x * 2])(3)
    8
    """

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class Lambda:
    """Wraps a function as a transform (picklable when the function is)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, x: Any) -> Any:
        return self.fn(x)


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel of a ``(..., C, H, W)`` image (numpy array or Var).

    Integer input is computed in float32; float input keeps its dtype.

    >>> Normalize([1.0, 2.0], [2.0, 4.0])(np.ones((2, 1, 1), np.float32)).ravel().tolist()
    [0.0, -0.25]
    """

    def __init__(self, mean: Union[float, Sequence[float]], std: Union[float, Sequence[float]]) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, np.float64))
        self.std = np.atleast_1d(np.asarray(std, np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError("Normalize: mean and std must be numbers or 1-d sequences (one per channel)")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std.tolist()}")

    def __call__(self, x: Any) -> Any:
        is_var = isinstance(x, Var)
        a = x if is_var else np.asarray(x)
        shape = tuple(a.shape)
        if len(shape) < 3:
            raise ValueError(f"Normalize: expected a (..., C, H, W) image, got shape {shape}")
        c = shape[-3]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, c):
                raise ValueError(f"Normalize: {name} has {v.size} values for an image of {c} channels")
        if is_var:  # native ops: stays lazy in lazy mode
            dt = x.dtype if x.dtype.name in ("float16", "bfloat16", "float32", "float64") else float32
            xv = x if dt == x.dtype else x.astype(dt)
            return (xv - asarray(self.mean.reshape(-1, 1, 1), dt)) / asarray(self.std.reshape(-1, 1, 1), dt)
        dt = a.dtype if a.dtype.kind == "f" else np.dtype(np.float32)
        mean = self.mean.astype(dt).reshape(-1, 1, 1)
        std = self.std.astype(dt).reshape(-1, 1, 1)
        return ((a.astype(dt, copy=False) - mean) / std).astype(dt, copy=False)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _size2(size: Any, who: str) -> tuple:
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    try:
        h, w = (operator.index(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: size must be an int or a pair (h, w), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{who}: size must be positive, got {(h, w)}")
    return h, w


class RandomCrop(_RandomTransform):
    """A random ``size`` window of the (padded) image ``(..., H, W)``.

    ``padding`` (an int, ``(ph, pw)`` or ``(left, top, right, bottom)``) pads with
    ``fill`` (``padding_mode='constant'``) or by ``'edge'``/``'reflect'``/``'symmetric'``
    before cropping.  The window's top-left corner is uniform over all positions.

    >>> RandomCrop(2, padding=1, seed=0)(np.ones((3, 4, 4), np.float32)).shape
    (3, 2, 2)
    """

    def __init__(self, size: Any, padding: Any = 0, fill: float = 0, padding_mode: str = "constant",
                 seed: SeedLike = None) -> None:
        super().__init__(seed)
        self.size = _size2(size, "RandomCrop")
        p = [padding] if isinstance(padding, (int, np.integer)) else list(padding)
        if len(p) == 1:
            p = p * 4
        elif len(p) == 2:
            p = [p[1], p[0], p[1], p[0]]
        if len(p) != 4 or any(int(v) < 0 for v in p):
            raise ValueError(f"RandomCrop: padding must be >= 0 and have 1, 2 or 4 values, got {padding!r}")
        self.padding = tuple(int(v) for v in p)  # left, top, right, bottom
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"RandomCrop: unknown padding_mode {padding_mode!r}")
        self.fill = fill
        self.padding_mode = padding_mode

    def __call__(self, x: Any) -> Any:
        a, was_var = _numpy(x)
        if a.ndim < 2:
            raise ValueError(f"RandomCrop: expected an (..., H, W) image, got shape {a.shape}")
        left, top, right, bottom = self.padding
        if any(self.padding):
            pads = [(0, 0)] * (a.ndim - 2) + [(top, bottom), (left, right)]
            if self.padding_mode == "constant":
                a = np.pad(a, pads, mode="constant", constant_values=self.fill)
            else:
                a = np.pad(a, pads, mode=self.padding_mode)
        H, W = a.shape[-2:]
        h, w = self.size
        if h > H or w > W:
            raise ValueError(f"RandomCrop: crop size {(h, w)} is larger than the padded image {(H, W)}")
        i = int(self.rng.integers(0, H - h + 1))
        j = int(self.rng.integers(0, W - w + 1))
        return _back(np.ascontiguousarray(a[..., i:i + h, j:j + w]), was_var)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(_RandomTransform):
    """Flips the last (width) axis with probability ``p``.

    >>> RandomHorizontalFlip(p=1.0)(np.array([[1, 2, 3]])).tolist()
    [[3, 2, 1]]
    """

    _axis = -1

    def __init__(self, p: float = 0.5, seed: SeedLike = None) -> None:
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x: Any) -> Any:
        a, was_var = _numpy(x)
        if a.ndim < 2:
            raise ValueError(f"{type(self).__name__}: expected an (..., H, W) image, got shape {a.shape}")
        if self.rng.random() < self.p:
            return _back(np.ascontiguousarray(np.flip(a, axis=self._axis)), was_var)
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Flips the height axis (second to last) with probability ``p``."""

    _axis = -2


class ToFloat:
    """Converts to float32; uint8 values are scaled to [0, 1] (``scale=True``).

    >>> ToFloat()(np.array([0, 255], np.uint8)).tolist()
    [0.0, 1.0]
    """

    def __init__(self, scale: bool = True) -> None:
        self.scale = bool(scale)

    def __call__(self, x: Any) -> Any:
        a, was_var = _numpy(x)
        out = a.astype(np.float32)
        if self.scale and a.dtype == np.uint8:
            out /= np.float32(255)
        return _back(out, was_var)


class ToTensor(ToFloat):
    """An ``(H, W, C)`` or ``(H, W)`` image -> float32 ``(C, H, W)``, uint8 scaled to [0, 1] (like torchvision).

    >>> ToTensor()(np.zeros((5, 6, 3), np.uint8)).shape, ToTensor()(np.zeros((5, 6), np.uint8)).shape
    ((3, 5, 6), (1, 5, 6))
    """

    def __call__(self, x: Any) -> Any:
        a, was_var = _numpy(x)
        if a.ndim == 2:
            a = a[None]
        elif a.ndim == 3:
            a = a.transpose(2, 0, 1)
        else:
            raise ValueError(f"ToTensor: expected an (H, W) or (H, W, C) image, got shape {a.shape}")
        return super().__call__(asarray(np.ascontiguousarray(a)) if was_var else a)


class ToVar:
    """numpy array (or anything array-like) -> Var."""

    def __call__(self, x: Any) -> Var:
        return asarray(x)
