"""The Python surface of :class:`Var` that is not arithmetic.

``Var`` itself is a native class (its operators run in C++ for low per-op
overhead); this module attaches properties, conversions and printing.  Op
families attach their method forms with :func:`attach` (e.g. ``x.sum()`` in
reduce.py, ``x.reshape()`` in movement.py, ``x[...]`` in indexing.py).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _native
from . import executor as _executor
from ._dtype import _BY_NAME, DType, as_dtype
from ._native import Var

_KIND_NAMES = ("Const", "Input", "Trainable", "Op")  # MNN's op_type names for leaves


def attach(**methods: Callable[..., Any]) -> None:
    """Adds methods (or properties) to Var; each op family calls this for its method forms."""
    for name, fn in methods.items():
        setattr(Var, name, fn)


def _dtype(self: Var) -> DType:
    return _BY_NAME[self._dtype_name]


def _values(self: Var) -> np.ndarray:
    """``_numpy()``, with an error that explains why a value cannot be read inside compile()."""
    try:
        return self._numpy()
    except ValueError as e:
        if _executor.is_tracing():
            raise ValueError(
                "compile: the function reads the value of a traced Var (read(), item(), bool(), float(), an `if` "
                "on a Var...), but while compiling, values are symbolic; compute with ops instead (F.where or "
                f"F.cond for a data-dependent choice, F.fori_loop / F.scan for loops). ({e})") from None
        raise


def value_leaf(v: Var) -> Var:
    """The (computed) value of ``v`` as a constant leaf with no history, sharing its memory."""
    if v.dtype.name == "bfloat16":
        return _native.from_numpy(v._numpy(), copy=False, dtype=v.dtype)
    return _native.from_numpy(v._numpy(), copy=False)


def read(self: Var) -> np.ndarray:
    """The value as a numpy array (computes it first in lazy mode); MNN's spelling.

    The array is read-only and shares this Var's memory; it stays valid after
    the Var is gone.  bfloat16 values are returned as float32.
    """
    return _values(self)


def item(self: Var, *index: Any) -> Any:
    """The value of a one-element Var (or of one element) as a Python scalar."""
    arr = _values(self)
    if not index and arr.size != 1:
        raise ValueError(f"item: only a Var of one element converts to a scalar, got shape {self.shape}")
    return arr.item(*index)


def tolist(self: Var) -> Any:
    """The value as nested Python lists."""
    return self._numpy().tolist()


def astype(self: Var, dtype: Any) -> Var:
    """A copy converted to ``dtype``."""
    return _native.cast(self, as_dtype(dtype).name)


def __array__(self: Var, dtype: Any = None, copy: Any = None) -> np.ndarray:
    arr = self._numpy()
    if dtype is not None:
        arr = arr.astype(dtype)
    elif copy:
        arr = arr.copy()
    return arr


def __repr__(self: Var) -> str:
    if not self._computed and self._kind == 1:
        name = f"'{self.name}', " if self.name else ""
        return f"Var(placeholder {name}shape={self.shape}, dtype={self._dtype_name})"
    try:
        values = self._numpy()
    except ValueError:  # depends on a placeholder with no value yet
        return f"Var(<needs a placeholder value>, shape={self.shape}, dtype={self._dtype_name})"
    body = np.array2string(values, separator=", ", prefix="Var(")
    return f"Var({body}, dtype={self._dtype_name})"


def __str__(self: Var) -> str:
    try:
        return str(self._numpy())
    except ValueError:  # an unwritten placeholder (or a value computed from one) has no values to show
        return __repr__(self)


def __bool__(self: Var) -> bool:
    if self.size != 1:
        raise ValueError(f"the truth value of a Var with {self.size} elements is ambiguous; use any() or all()")
    return bool(_values(self).item())


def __float__(self: Var) -> float:
    return float(item(self))


def __int__(self: Var) -> int:
    return int(item(self))


def __index__(self: Var) -> int:
    if not self.dtype.is_integer:  # as numpy: bools are not indices
        raise TypeError(f"only integer Vars can be used as an index, got {self.dtype}")
    return int(item(self))


def __iter__(self: Var):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d Var")
    for i in range(self.shape[0]):
        yield self[i]


def __dlpack__(self: Var, *args: Any, **kwargs: Any) -> Any:
    return self._numpy().__dlpack__(*args, **kwargs)


def __dlpack_device__(self: Var) -> tuple:
    return (1, 0)  # CPU


def op_type(self: Var) -> str:
    """Name of the op that produced this Var (MNN: ``Const``, ``Input``, ``Trainable`` or the op)."""
    op = self._op
    return op if op is not None else _KIND_NAMES[self._kind]


def write(self: Var, value: Any) -> None:
    """Gives a placeholder its value (MNN's ``write``)."""
    arr = np.array(value, dtype=self.dtype.numpy, order="C")
    self._write(arr)


def fix_as_placeholder(self: Var) -> None:
    """Turns this Var into an input whose value can be written (MNN)."""
    self._set_kind(1)


def fix_as_const(self: Var) -> None:
    """Computes this Var now and freezes it as a constant, dropping its history (MNN)."""
    self._rebind(_native.from_numpy(self._numpy(), copy=True, dtype=self._dtype_name))


def fix_as_trainable(self: Var) -> None:
    """Marks this Var as a trainable parameter: gradients are wanted for it (MNN)."""
    if not self.dtype.is_floating:
        raise TypeError(f"fix_as_trainable: only float Vars can be trainable, got {self.dtype}")
    fix_as_const(self)
    self._set_kind(2)
    self.requires_grad = True


attach(
    dtype=property(_dtype, doc="Element type (a :class:`DType`)."),
    T=property(lambda self: self.transpose(), doc="The Var with its axes reversed."),
    data_format=property(lambda self: "NCHW", doc="Always NCHW/plain: packed layouts never leak (MNN compat)."),
    op_type=property(op_type),
    inputs=property(lambda self: self._inputs, doc="Input Vars of the producing op (empty once history is dropped)."),
    valid=property(lambda self: True, doc="True: shapes are always known (MNN compat)."),
    read=read, numpy=read, item=item, tolist=tolist, astype=astype, write=write,
    fix_as_placeholder=fix_as_placeholder, fix_as_const=fix_as_const, fix_as_trainable=fix_as_trainable,
    __array__=__array__, __repr__=__repr__, __str__=__str__, __bool__=__bool__, __float__=__float__,
    __int__=__int__, __index__=__index__, __iter__=__iter__, __dlpack__=__dlpack__,
    __dlpack_device__=__dlpack_device__, __array_priority__=1000,
)
