"""Seedable random numbers: uniform, normal, integers, permutations, Bernoulli draws.

Draws are counter-based (Philox4x32-10 in the native ``random_uniform`` /
``random_normal`` primitives): element ``i`` of a draw depends only on the
op's ``(seed, offset)`` attributes and ``i``.  A :class:`Generator` holds a
seed and hands each call the next offset, so successive calls differ while
every draw is reproducible -- and identical in eager and lazy mode and for
any thread count.  Module-level functions use a global generator, seeded from
the OS at import; :func:`seed` resets it.

Unlike MNN's ``numpy.random.randn`` (uniform), :func:`randn` is truly normal.

>>> import mnn_expr as F
>>> F.random.seed(0); a = F.random.rand(3)
>>> F.random.seed(0); bool((a == F.random.rand(3)).all())
True
>>> g = F.random.Generator(42); g.integers(0, 10, size=5).dtype
mnn_expr.int64
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from typing import Any, Optional, Union

from . import _native
from ._core import apply, apply1
from ._dtype import as_dtype
from ._native import Var
from .creation import asarray, zeros

ArrayLike = Any
Size = Union[None, int, Sequence[int]]

# Exported into mnn_expr: MNN's randomuniform and the PyTorch-style shortcuts.  Everything
# else lives in the ``mnn_expr.random`` namespace (as ``numpy.random``); "random" itself
# must not be exported, or it would hide this module.
__all__ = ["randomuniform", "rand", "randn", "randint"]

_SEED_MASK = (1 << 63) - 1


def _seed_value(s: Any) -> int:
    """A non-negative int64 from any Python int (larger values are folded)."""
    if isinstance(s, Var):
        s = s.item()
    if not isinstance(s, int) and not hasattr(s, "__index__"):
        raise TypeError(f"seed must be an int, got {s!r}")
    s = int(s)
    if s < 0:
        raise ValueError(f"seed must be non-negative, got {s}")
    out = 0
    while True:
        out ^= s & _SEED_MASK
        s >>= 63
        if not s:
            return out


def _shape(size: Size, op: str) -> list:
    if size is None:
        return []
    if isinstance(size, int) or hasattr(size, "__index__") and not isinstance(size, (list, tuple)):
        size = [size]
    shape = [int(d) for d in size]
    if any(d < 0 for d in shape):
        raise ValueError(f"{op}: negative dimension in size {tuple(shape)}")
    return shape


def _float_dtype(dtype: Any, op: str) -> str:
    d = as_dtype(dtype)
    if not d.is_floating:
        raise TypeError(f"{op}: dtype must be a float type, got {d.name}")
    return d.name


def _is_scalar(v: Any) -> bool:
    return (
        isinstance(v, (int, float))
        or hasattr(v, "__float__")
        and not isinstance(v, Var)
        and getattr(v, "ndim", 0) == 0
    )


class Generator:
    """A random generator with its own seed and stream position (like ``numpy.random.Generator``).

    ``Generator(seed)`` with ``seed=None`` takes a seed from the OS.

    >>> import mnn_expr as F
    >>> g1, g2 = F.random.Generator(7), F.random.Generator(7)
    >>> bool((g1.normal(size=4) == g2.normal(size=4)).all())
    True
    """

    def __init__(self, seed: Optional[int] = None) -> None:
        self._lock = threading.Lock()
        self.seed(seed)

    def seed(self, seed: Optional[int] = None) -> None:
        """Restarts the stream from ``seed`` (``None``: a seed from the OS)."""
        with self._lock:
            self._seed = (
                _seed_value(seed)
                if seed is not None
                else int.from_bytes(os.urandom(8), "little") & _SEED_MASK
            )
            self._offset = 0

    def _next(self) -> tuple:
        with self._lock:
            off = self._offset
            self._offset += 1
        return self._seed, off

    @property
    def state(self) -> dict:
        """``{"seed": ..., "offset": ...}``: where the stream is."""
        return {"seed": self._seed, "offset": self._offset}

    @state.setter
    def state(self, value: dict) -> None:
        with self._lock:
            self._seed, self._offset = _seed_value(value["seed"]), int(value["offset"])

    # ---- draws ----------------------------------------------------------------------

    def _uniform(self, shape: list, dtype: str, low: float = 0.0, high: float = 1.0) -> Var:
        s, off = self._next()
        return apply1(
            "random_uniform",
            [],
            shape=shape,
            dtype=dtype,
            low=float(low),
            high=float(high),
            seed=s,
            offset=off,
        )

    def _normal(self, shape: list, dtype: str, mean: float = 0.0, std: float = 1.0) -> Var:
        s, off = self._next()
        return apply1(
            "random_normal",
            [],
            shape=shape,
            dtype=dtype,
            mean=float(mean),
            std=float(std),
            seed=s,
            offset=off,
        )

    def random(self, size: Size = None, dtype: Any = "float32") -> Var:
        """Uniform floats in ``[0, 1)`` of shape ``size`` (``None``: a 0-d Var)."""
        return self._uniform(_shape(size, "random"), _float_dtype(dtype, "random"))

    def uniform(
        self, low: ArrayLike = 0.0, high: ArrayLike = 1.0, size: Size = None, dtype: Any = "float32"
    ) -> Var:
        """Uniform floats in ``[low, high)``; ``low``/``high`` may be arrays (broadcast with ``size``).

        >>> import mnn_expr as F
        >>> x = F.random.Generator(0).uniform(2.0, 3.0, size=1000)
        >>> bool((x >= 2).all() and (x < 3).all())
        True
        """
        dt = _float_dtype(dtype, "uniform")
        if _is_scalar(low) and _is_scalar(high):
            low, high = float(low), float(high)
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"uniform: bounds must be finite, got low={low}, high={high}")
            if high < low:
                raise ValueError(f"uniform: expected low <= high, got low={low}, high={high}")
            return self._uniform(_shape(size, "uniform"), dt, low, high)
        lo, hi = asarray(low, dt), asarray(high, dt)
        shape = _shape(size, "uniform") if size is not None else list(_broadcast(lo.shape, hi.shape))
        return lo + (hi - lo) * self._uniform(shape, dt)

    def normal(
        self, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0, size: Size = None, dtype: Any = "float32"
    ) -> Var:
        """Normal (Gaussian) floats with mean ``loc`` and standard deviation ``scale`` (Box-Muller)."""
        dt = _float_dtype(dtype, "normal")
        if _is_scalar(loc) and _is_scalar(scale):
            loc, scale = float(loc), float(scale)
            if scale < 0 or not (math.isfinite(loc) and math.isfinite(scale)):
                raise ValueError(f"normal: expected a finite loc and a finite scale >= 0, got {loc}, {scale}")
            return self._normal(_shape(size, "normal"), dt, loc, scale)
        mu, sd = asarray(loc, dt), asarray(scale, dt)
        shape = _shape(size, "normal") if size is not None else list(_broadcast(mu.shape, sd.shape))
        return mu + sd * self._normal(shape, dt)

    def standard_normal(self, size: Size = None, dtype: Any = "float32") -> Var:
        """Normal floats with mean 0 and standard deviation 1."""
        return self._normal(_shape(size, "standard_normal"), _float_dtype(dtype, "standard_normal"))

    def integers(
        self,
        low: int,
        high: Optional[int] = None,
        size: Size = None,
        dtype: Any = "int64",
        endpoint: bool = False,
    ) -> Var:
        """Uniform integers in ``[low, high)`` (``[0, low)`` if ``high`` is None; ``endpoint`` includes high).

        >>> import mnn_expr as F
        >>> x = F.random.Generator(1).integers(5, 8, size=100)
        >>> sorted(set(x.tolist()))
        [5, 6, 7]
        """
        if high is None:
            low, high = 0, low
        low, high = int(low), int(high) + (1 if endpoint else 0)
        if low >= high:
            raise ValueError(f"integers: expected low < high, got low={low}, high={high}")
        d = as_dtype(dtype)
        if not d.is_integer:
            raise TypeError(f"integers: dtype must be an integer type, got {d.name}")
        bits = d.itemsize * 8
        lo_ok, hi_ok = (0, 1 << bits) if d.kind == "u" else (-(1 << (bits - 1)), 1 << (bits - 1))
        if low < lo_ok or high > hi_ok:
            raise ValueError(f"integers: [{low}, {high}) does not fit dtype {d.name}")
        if high - low > 1 << 53:
            raise ValueError(f"integers: a range wider than 2**53 is not supported, got [{low}, {high})")
        # floor of a float64 uniform in [low, high): every value in range, bias below 2**-53 per draw
        u = self._uniform(_shape(size, "integers"), "float64", float(low), float(high))
        return _native.cast(_native.unary("floor", u), d.name)

    def permutation(self, x: Union[int, ArrayLike]) -> Var:
        """Permutation of ``arange(x)`` (int ``x``) or of ``x``'s first axis: an argsort of random keys.

        >>> import mnn_expr as F
        >>> sorted(F.random.Generator(3).permutation(5).tolist())
        [0, 1, 2, 3, 4]
        """
        if isinstance(x, int) or hasattr(x, "__index__") and not isinstance(x, Var):
            n = int(x)
            if n < 0:
                raise ValueError(f"permutation: n must be >= 0, got {n}")
            return apply("sort", [self._uniform([n], "float64")], axis=0, descending=False)[1]
        x = asarray(x)
        if x.ndim == 0:
            raise ValueError("permutation: x must be an int or have at least one dimension")
        perm = self.permutation(x.shape[0])
        return apply1("gather", [x, perm], axis=0)

    def bernoulli(self, p: ArrayLike = 0.5, size: Size = None, dtype: Any = "float32") -> Var:
        """1 with probability ``p``, else 0, as ``dtype`` (``p`` may be an array broadcast with ``size``)."""
        if _is_scalar(p):
            pv = float(p)
            if not 0.0 <= pv <= 1.0:
                raise ValueError(f"bernoulli: p must be in [0, 1], got {pv}")
            draw = self._uniform(_shape(size, "bernoulli"), "float64")
            return _native.cast(_native.binary("less", draw, pv), as_dtype(dtype).name)
        pv = asarray(p)
        if not pv.dtype.is_floating:
            pv = _native.cast(pv, "float32")
        shape = _shape(size, "bernoulli") if size is not None else list(pv.shape)
        return _native.cast(
            _native.binary("less", self._uniform(shape, pv.dtype.name), pv), as_dtype(dtype).name
        )

    def choice(self, a: Union[int, ArrayLike], size: Size = None, replace: bool = True) -> Var:
        """Random elements of ``arange(a)`` (int ``a``) or of 1-D ``a``; ``replace=False``: distinct ones.

        >>> import mnn_expr as F
        >>> len(set(F.random.Generator(0).choice(10, 10, replace=False).tolist()))
        10
        """
        n = int(a) if isinstance(a, int) or hasattr(a, "__index__") and not isinstance(a, Var) else None
        arr = None if n is not None else asarray(a)
        if arr is not None:
            if arr.ndim != 1:
                raise ValueError(f"choice: a must be an int or 1-D, got shape {arr.shape}")
            n = arr.shape[0]
        shape = _shape(size, "choice")
        count = math.prod(shape)
        if n <= 0 and count > 0:
            raise ValueError("choice: cannot take a sample from an empty population")
        if count == 0:
            idx = zeros(shape, "int64")
        elif replace:
            idx = self.integers(0, n, size=shape)
        else:
            if count > n:
                raise ValueError(f"choice: cannot take {count} distinct samples from a population of {n}")
            _, first = apply("topk", [self._uniform([n], "float64")], k=count, axis=0, largest=True)
            idx = apply1("reshape", [first], shape=shape)
        return idx if arr is None else apply1("gather", [arr, idx], axis=0)


def _broadcast(a: tuple, b: tuple) -> tuple:
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            raise ValueError(f"shapes {a} and {b} cannot be broadcast together")
        out.append(y if x == 1 else x)
    return tuple(out)


def default_rng(seed: Optional[int] = None) -> Generator:
    """A new :class:`Generator` (NumPy's spelling)."""
    return Generator(seed)


_global = Generator()


def seed(n: Optional[int] = None) -> None:
    """Reseeds the global generator used by the module-level functions.

    >>> import mnn_expr as F
    >>> F.random.seed(5); a = F.random.randn(2); F.random.seed(5)
    >>> a.tolist() == F.random.randn(2).tolist()
    True
    """
    _global.seed(n)


def uniform(low: ArrayLike = 0.0, high: ArrayLike = 1.0, size: Size = None, dtype: Any = "float32") -> Var:
    """Uniform floats in ``[low, high)`` from the global generator (see :meth:`Generator.uniform`)."""
    return _global.uniform(low, high, size, dtype)


def normal(loc: ArrayLike = 0.0, scale: ArrayLike = 1.0, size: Size = None, dtype: Any = "float32") -> Var:
    """Normal floats from the global generator (see :meth:`Generator.normal`)."""
    return _global.normal(loc, scale, size, dtype)


def standard_normal(size: Size = None, dtype: Any = "float32") -> Var:
    """Normal floats with mean 0 and standard deviation 1 from the global generator."""
    return _global.standard_normal(size, dtype)


def random(size: Size = None, dtype: Any = "float32") -> Var:
    """Uniform floats in ``[0, 1)`` of shape ``size`` from the global generator (MNN: ``random(shape)``)."""
    return _global.random(size, dtype)


random_sample = random


def rand(*shape: int) -> Var:
    """Uniform float32 in ``[0, 1)`` of the given shape: ``rand(2, 3)``.

    >>> import mnn_expr as F
    >>> F.random.rand(2, 3).shape
    (2, 3)
    """
    return _global.random(list(shape))


def randn(*shape: int) -> Var:
    """Standard normal float32 of the given shape: ``randn(2, 3)`` (truly normal, unlike MNN's)."""
    return _global.standard_normal(list(shape))


def randint(low: int, high: Optional[int] = None, size: Size = None, dtype: Any = "int64") -> Var:
    """Uniform integers in ``[low, high)`` (``[0, low)`` when ``high`` is None) from the global generator.

    >>> import mnn_expr as F
    >>> bool((F.random.randint(3, size=50) < 3).all())
    True
    """
    return _global.integers(low, high, size, dtype)


integers = randint


def permutation(x: Union[int, ArrayLike]) -> Var:
    """A random permutation of ``arange(x)`` or of ``x``'s first axis, from the global generator."""
    return _global.permutation(x)


def bernoulli(p: ArrayLike = 0.5, size: Size = None, dtype: Any = "float32") -> Var:
    """1 with probability ``p``, else 0, from the global generator (see :meth:`Generator.bernoulli`)."""
    return _global.bernoulli(p, size, dtype)


def choice(a: Union[int, ArrayLike], size: Size = None, replace: bool = True) -> Var:
    """Random elements of ``arange(a)`` or of 1-D ``a`` from the global generator."""
    return _global.choice(a, size, replace)


def randomuniform(
    shape: Sequence[int],
    dtype: Any = "float32",
    low: float = 0.0,
    high: float = 1.0,
    seed0: int = 0,
    seed1: int = 1,
) -> Var:
    """MNN's ``randomuniform``: uniform floats in ``[low, high)``.

    As in MNN, nonzero seeds make the draw deterministic (the same values on
    every call with the same seeds, including the default ``seed1=1``); with
    ``seed0 == seed1 == 0`` it draws from the global generator.
    """
    dt = _float_dtype(dtype, "randomuniform")
    shape = _shape(shape, "randomuniform")
    if seed0 == 0 and seed1 == 0:
        return _global.uniform(low, high, shape, dt)
    s = _seed_value((int(seed0) << 32) ^ (int(seed1) & 0xFFFFFFFF))
    return apply1(
        "random_uniform", [], shape=shape, dtype=dt, low=float(low), high=float(high), seed=s, offset=0
    )
