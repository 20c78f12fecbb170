"""Indexing: gather/scatter with tensor indices, and NumPy indexing on Vars (``x[...]``, ``x[...] = v``).

``x[key]`` follows NumPy's rules: integers, slices (negative steps too),
``...``, ``None``/``np.newaxis``, integer arrays (lists, numpy arrays, integer
Vars; several of them broadcast together, and when a slice separates them the
indexed dims go first, as in NumPy) and boolean masks, in any combination.
Differences from NumPy:

- the result is always a new Var (a 0-d Var for a single element), never a view;
- a boolean mask (a bool Var or array) is turned into the positions of its
  ``True`` elements, so a mask Var is *read*, which computes it (also in lazy
  mode);
- out-of-range indices raise ``IndexError``; for integer Vars the check happens
  when the value is computed.

``x[key] = v`` is functional: it builds the updated value (a raster copy for
basic keys, ``where`` for a mask with a value that does not depend on the mask's
count, a scatter otherwise) and rebinds the Python handle ``x`` to it.  Other
Vars computed from the old ``x`` keep their values (unlike NumPy views), and
another handle to the old value (``y = x`` before the update) still sees the old
value only if it is a different Var object.  ``v`` is broadcast to the indexed
shape and cast to ``x``'s dtype; with repeated indices the last write wins.
Each update copies ``x`` once.

>>> import mnn_expr as F
>>> x = F.arange(12).reshape(3, 4)
>>> x[1:, ::-2].tolist(), x[[0, 2], 1].tolist(), x[x > 9].tolist()
([[7, 5], [11, 9]], [1, 9], [10, 11])
>>> x[:, 0] = -1
>>> x[0].tolist()
[-1, 1, 2, 3]
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _native
from ._core import normalize_axis
from ._dtype import as_dtype, float32
from ._native import Var
from ._var import attach
from .creation import asarray
from .movement import (
    _OP_ID,
    _ap,
    _broadcast_shape,
    _ints,
    _region,
    _same,
    _strides,
    broadcast_to,
    expand_dims,
    ravel,
    reshape,
    transpose,
)

ArrayLike = Any
_SMALL = -(2**63)


def _const(arr: np.ndarray) -> Var:
    return _native.from_numpy(arr if arr.flags.c_contiguous else np.array(arr, order="C"), copy=False)


def _is_int(k: Any) -> bool:
    return isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))


def _index_array(idx: Any, op: str) -> Any:
    """An integer index as a numpy int64 array or an integer Var; IndexError for other dtypes."""
    if isinstance(idx, Var):
        if not idx.dtype.is_integer:
            raise IndexError(f"{op}: indices must be integers, got a Var of dtype {idx.dtype}")
        return idx
    arr = np.asarray(idx)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)  # [] is an empty integer index
    if arr.dtype.kind not in "iu":
        raise IndexError(f"{op}: indices must be integers, got {arr.dtype}")
    return arr.astype(np.int64)  # a copy: callers may wrap negatives in place


def _checked(arr: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Static indices checked against an axis of size n, negatives wrapped."""
    bad = (arr < -n) | (arr >= n)
    if bad.any():
        first = int(arr[bad].reshape(-1)[0])
        raise IndexError(f"index {first} is out of bounds for axis {axis} with size {n}")
    return np.where(arr < 0, arr + n, arr) if arr.size else arr


def _index_var(idx: Any) -> Var:
    return idx if isinstance(idx, Var) else _const(idx)


# ---- functions with tensor indices ----------------------------------------------------


def take(a: ArrayLike, indices: Any, axis: int | None = None, mode: str = "raise") -> Var:
    """Elements of ``a`` at ``indices`` along ``axis`` (of the flattened ``a`` when None), as NumPy.

    ``mode``: ``"raise"`` (out-of-range -> IndexError), ``"wrap"`` or ``"clip"``.

    >>> import mnn_expr as F
    >>> F.take(F.array([[1, 2], [3, 4]]), [1, 0], axis=1).tolist()
    [[2, 1], [4, 3]]
    """
    a = asarray(a)
    if axis is None:
        a, ax = ravel(a), 0
    else:
        if a.ndim == 0:
            raise ValueError(f"take: axis {axis} is out of range for a 0-d input")
        ax = normalize_axis(axis, a.ndim, "take")
    n = a.shape[ax]
    idx = _index_array(indices, "take")
    if mode not in ("raise", "wrap", "clip"):
        raise ValueError(f"take: mode must be 'raise', 'wrap' or 'clip', got {mode!r}")
    if mode != "raise":
        if n == 0 and (idx.size if isinstance(idx, Var) else idx.size):
            raise IndexError("take: cannot do a non-empty take from an empty axis")
        if isinstance(idx, Var):
            from .elementwise import clip, mod

            idx = mod(idx, max(n, 1)) if mode == "wrap" else clip(idx, 0, max(n - 1, 0))
        else:
            idx = np.mod(idx, max(n, 1)) if mode == "wrap" else np.clip(idx, 0, max(n - 1, 0))
    elif not isinstance(idx, Var):
        idx = _checked(idx, n, ax)
    return _ap("gather", [a, _index_var(idx)], axis=ax)


def gather(x: ArrayLike, indices: Any, axis: int = 0) -> Var:
    """MNN's ``gather(params, indices)``: slices of ``x`` along ``axis`` (0) at ``indices`` (any shape).

    >>> import mnn_expr as F
    >>> F.gather(F.array([[1, 2], [3, 4]]), [[1], [0]]).shape
    (2, 1, 2)
    """
    return take(x, indices, axis=axis)


def gather_nd(x: ArrayLike, indices: Any) -> Var:
    """``out[i] = x[indices[i, :]]``: the last dim of ``indices`` indexes the leading dims of ``x`` (TF/MNN).

    >>> import mnn_expr as F
    >>> F.gather_nd(F.array([[1, 2], [3, 4]]), [[1, 0], [0, 1]]).tolist()
    [3, 2]
    """
    x = asarray(x)
    idx = _index_array(indices, "gather_nd")
    if not isinstance(idx, Var) and idx.ndim >= 1 and idx.shape[-1] <= x.ndim:
        for j in range(idx.shape[-1]):
            idx[..., j] = _checked(idx[..., j], x.shape[j], j)
    return _ap("gather_nd", [x, _index_var(idx)])


def take_along_axis(arr: ArrayLike, indices: Any, axis: int | None = -1) -> Var:
    """``arr`` picked at ``indices`` along ``axis`` (NumPy's ``take_along_axis``; other dims broadcast).

    >>> import mnn_expr as F
    >>> F.take_along_axis(F.array([[10, 30, 20]]), F.array([[0, 2, 1]]), axis=1).tolist()
    [[10, 20, 30]]
    """
    arr = asarray(arr)
    idx = _index_array(indices, "take_along_axis")
    if axis is None:
        if idx.ndim != 1:
            raise ValueError("take_along_axis: when axis=None, indices must have a single dimension")
        arr, axis = ravel(arr), 0
    if idx.ndim != arr.ndim:
        raise ValueError(f"take_along_axis: indices of shape {idx.shape} and arr of shape {arr.shape} "
                         "must have the same number of dimensions")
    return _ap("take_along_axis", [arr, _index_var(idx)], axis=int(axis))


def put_along_axis(arr: ArrayLike, indices: Any, values: ArrayLike, axis: int | None,
                   reduction: str = "none") -> Var:
    """A copy of ``arr`` with ``values`` written at ``indices`` along ``axis`` (NumPy's ``put_along_axis``,
    returning the new value instead of writing in place).

    ``values`` broadcast to the index shape and are cast to ``arr``'s dtype;
    ``reduction`` may be ``"add"``, ``"mul"``, ``"max"`` or ``"min"`` to combine instead of replace.

    >>> import mnn_expr as F
    >>> F.put_along_axis(F.zeros((2, 3)), F.array([[0], [2]]), 5.0, axis=1).tolist()
    [[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]]
    """
    arr = asarray(arr)
    idx = _index_array(indices, "put_along_axis")
    vals = asarray(values, arr.dtype)
    if axis is None:
        if idx.ndim != 1:
            raise ValueError("put_along_axis: when axis=None, indices must have a single dimension")
        flat = _ap("put_along_axis", [ravel(arr), _index_var(idx), vals], axis=0, reduction=reduction)
        return reshape(flat, arr.shape)
    if idx.ndim != arr.ndim:
        raise ValueError(f"put_along_axis: indices of shape {idx.shape} and arr of shape {arr.shape} "
                         "must have the same number of dimensions")
    return _ap("put_along_axis", [arr, _index_var(idx), vals], axis=int(axis), reduction=reduction)


def scatter(data: ArrayLike, indices: Any, updates: ArrayLike, axis: int = 0, reduction: str = "none") -> Var:
    """ONNX ``ScatterElements``: a copy of ``data`` with ``updates[i]`` written at position ``i`` with
    coordinate ``axis`` replaced by ``indices[i]``; ``indices`` may be smaller than ``data`` in other dims.

    >>> import mnn_expr as F
    >>> F.scatter(F.zeros((2, 3)), F.array([[2]]), F.array([[7.0]]), axis=1).tolist()
    [[0.0, 0.0, 7.0], [0.0, 0.0, 0.0]]
    """
    data = asarray(data)
    idx = _index_array(indices, "scatter")
    ax = normalize_axis(axis, max(data.ndim, 1), "scatter")
    if idx.ndim != data.ndim:
        raise ValueError(f"scatter: indices {idx.shape} must have as many dims as data {data.shape}")
    upd = asarray(updates, data.dtype)
    if upd.shape != tuple(idx.shape):
        raise ValueError(f"scatter: updates {upd.shape} must have the shape of indices {tuple(idx.shape)}")
    box = []
    for d in range(data.ndim):
        if d != ax and idx.shape[d] > data.shape[d]:
            raise ValueError(f"scatter: indices {tuple(idx.shape)} exceed data {data.shape} in dim {d}")
        box.append(builtins.slice(None) if d == ax else builtins.slice(0, idx.shape[d]))
    if all(d == ax or idx.shape[d] == data.shape[d] for d in range(data.ndim)):
        return _ap("put_along_axis", [data, _index_var(idx), upd], axis=ax, reduction=reduction)
    sub = _getitem(data, tuple(box))
    out = _same(data)
    done = _ap("put_along_axis", [sub, _index_var(idx), upd], axis=ax, reduction=reduction)
    _setitem(out, tuple(box), done)
    return out


def scatter_nd(indices: Any, updates: ArrayLike, shape: Any) -> Var:
    """MNN/TF ``scatter_nd``: zeros of ``shape`` with ``updates`` added at ``indices`` (duplicates sum).

    >>> import mnn_expr as F
    >>> F.scatter_nd(F.array([[1], [3], [1]]), F.array([1.0, 2.0, 3.0]), [5]).tolist()
    [0.0, 4.0, 0.0, 2.0, 0.0]
    """
    upd = asarray(updates)
    shape = _ints(shape, "shape", "scatter_nd")
    idx = _index_array(indices, "scatter_nd")
    if idx.ndim < 1 or idx.shape[-1] > len(shape):
        raise ValueError(f"scatter_nd: indices of shape {tuple(idx.shape)} do not fit shape {tuple(shape)}")
    want = tuple(idx.shape[:-1]) + tuple(shape[idx.shape[-1]:])
    if upd.shape != want:
        upd = broadcast_to(upd, want)
    zeros = _const(np.zeros(shape, dtype=upd.dtype.numpy)) if upd.dtype.name != "bfloat16" else _const(
        np.zeros(shape, np.float32)).astype("bfloat16")
    if not isinstance(idx, Var):
        for j in range(idx.shape[-1]):
            idx[..., j] = _checked(idx[..., j], shape[j], j)
    return _ap("scatter_nd", [zeros, _index_var(idx), upd], reduction="add")


def one_hot(indices: ArrayLike, depth: int, on_value: Any = 1.0, off_value: Any = 0.0, axis: int = -1,
            dtype: Any = float32) -> Var:
    """``on_value`` where ``indices`` equals the position along a new ``axis`` of size ``depth``,
    ``off_value`` elsewhere (out-of-range indices give a row of ``off_value``).

    >>> import mnn_expr as F
    >>> F.one_hot(F.array([0, 2]), 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    from .elementwise import equal, where

    idx = asarray(indices)
    if not idx.dtype.is_integer:
        raise TypeError(f"one_hot: indices must be integers, got {idx.dtype}")
    depth = int(depth)
    if depth < 0:
        raise ValueError(f"one_hot: depth must be >= 0, got {depth}")
    ax = normalize_axis(axis, idx.ndim + 1, "one_hot")
    shape = [1] * (idx.ndim + 1)
    shape[ax] = depth
    positions = _const(np.arange(depth, dtype=idx.dtype.numpy).reshape(shape))
    dt = as_dtype(dtype)
    hit = equal(expand_dims(idx, ax), positions)
    return where(hit, asarray(on_value, dt), asarray(off_value, dt))


def strided_slice(x: ArrayLike, begin: Any, end: Any, strides: Any, begin_mask: int = 0, end_mask: int = 0,
                  ellipsis_mask: int = 0, new_axis_mask: int = 0, shrink_axis_mask: int = 0) -> Var:
    """MNN/TF ``strided_slice``: ``x[begin:end:strides]`` per listed axis, with bit masks for omitted
    begins/ends, an ellipsis, new axes and removed (integer-indexed) axes.

    >>> import mnn_expr as F
    >>> F.strided_slice(F.arange(12).reshape(3, 4), [0, 3], [3, 0], [2, -1], end_mask=1).tolist()
    [[3, 2, 1], [11, 10, 9]]
    """
    x = asarray(x)
    b, e = _ints(begin, "begin", "strided_slice"), _ints(end, "end", "strided_slice")
    s = _ints(strides, "strides", "strided_slice")
    if not len(b) == len(e) == len(s):
        raise ValueError(f"strided_slice: begin {b}, end {e} and strides {s} must have the same length")
    key: list = []
    for i in range(len(b)):
        bit = 1 << i
        if ellipsis_mask & bit:
            key.append(Ellipsis)
        elif new_axis_mask & bit:
            key.append(None)
        elif shrink_axis_mask & bit:
            key.append(b[i])
        else:
            if s[i] == 0:
                raise ValueError("strided_slice: strides must not be zero")
            lo, hi = None if begin_mask & bit else b[i], None if end_mask & bit else e[i]
            key.append(builtins.slice(lo, hi, s[i]))
    return _getitem(x, tuple(key))


# ---- x[key] -------------------------------------------------------------------------------


def _parse(x: Var, key: Any) -> list:
    """The key as items ("int", i) / ("slice", s) / ("new", None) / ("adv", array or Var) /
    ("newadv", array), one per result-shaping entry, with masks expanded to their nonzero
    positions and the Ellipsis (or the implicit trailing one) expanded to full slices."""
    if not isinstance(key, tuple):
        key = (key,)
    items: list = []
    consumed, ellipses = 0, 0
    for k in key:
        if k is Ellipsis:
            items.append(("ell", None))
            ellipses += 1
        elif k is None:
            items.append(("new", None))
        elif isinstance(k, (bool, np.bool_)):
            items.append(("newadv", np.zeros(int(bool(k)), np.int64)))
        elif _is_int(k):
            items.append(("int", int(k)))
            consumed += 1
        elif isinstance(k, builtins.slice):
            items.append(("slice", k))
            consumed += 1
        else:
            if isinstance(k, Var):
                if k.dtype.name == "bool":
                    k = k.read()  # a mask: its positions decide the result's shape
                elif not k.dtype.is_integer:
                    raise IndexError("arrays used as indices must be of integer (or boolean) type, "
                                     f"got {k.dtype}")
                else:
                    items.append(("adv", k))
                    consumed += 1
                    continue
            arr = np.asarray(k)
            if arr.dtype == np.bool_:
                if arr.ndim == 0:
                    items.append(("newadv", np.zeros(int(arr), np.int64)))
                else:
                    items.append(("mask", arr))
                    consumed += arr.ndim
            elif arr.dtype.kind in "iu" or (arr.size == 0 and arr.dtype.kind == "f"):
                items.append(("adv", arr.astype(np.int64)))
                consumed += 1
            else:
                raise IndexError("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and "
                                 f"integer or boolean arrays are valid indices, got {k!r}")
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > x.ndim:
        raise IndexError(f"too many indices for array: array is {x.ndim}-dimensional, "
                         f"but {consumed} were indexed")
    fill = [("slice", builtins.slice(None))] * (x.ndim - consumed)
    out: list = []
    dim = 0
    for kind, p in items:
        if kind == "ell":
            out += fill if fill else [("sep", None)]  # an empty ellipsis still separates indices
            dim += len(fill)
            fill = []
        elif kind == "mask":
            want = x.shape[dim:dim + p.ndim]
            if p.shape != want:
                for j, (m, n) in enumerate(zip(p.shape, want)):
                    if m != n:
                        raise IndexError(f"boolean index did not match indexed array along axis {dim + j}; "
                                         f"size of axis is {n} but size of corresponding boolean axis is {m}")
            out += [("adv", nz.astype(np.int64)) for nz in np.nonzero(p)]
            dim += p.ndim
        else:
            out.append((kind, p))
            dim += kind in ("int", "slice", "adv")
    return out + fill


def _slice_bounds(s: builtins.slice, n: int) -> tuple:
    """(begin, end, step, length) of a slice over n elements, bounds normalised for the slice
    primitive (a position before the start is passed as the smallest int64)."""
    b, e, step = s.indices(n)  # ValueError for a zero step, as NumPy
    length = len(range(b, e, step))
    return (b if b >= 0 else _SMALL), (e if e >= 0 else _SMALL), step, length


def _basic(x: Var, items: list) -> tuple:
    """Applies ints (dropping their dims), slices and new axes: NumPy basic indexing."""
    begins, ends, steps, shape = [], [], [], []
    identity = True
    dim = 0
    for kind, p in items:
        if kind == "sep":
            continue
        if kind == "new":
            shape.append(1)
            continue
        n = x.shape[dim]
        if kind == "int":
            i = p + n if p < 0 else p
            if not 0 <= i < n:
                raise IndexError(f"index {p} is out of bounds for axis {dim} with size {n}")
            begins.append(i), ends.append(i + 1), steps.append(1)
            identity = False
        else:
            b, e, st, length = _slice_bounds(p, n)
            begins.append(b), ends.append(e), steps.append(st)
            shape.append(length)
            identity &= length == n and (st == 1 or n <= 1)
        dim += 1
    y = x if identity else _ap("slice", [x], begins=begins, ends=ends, steps=steps)
    if tuple(shape) != y.shape:
        y = _ap("reshape", [y], shape=shape)
    return y if y is not x else _same(x)


def _getitem(x: Var, key: Any) -> Var:
    # Fast path: x[i] (also what iteration uses).
    if _is_int(key) and x.ndim:
        n, i = x.shape[0], int(key)
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"index {i} is out of bounds for axis 0 with size {n}")
        begins = [j] + [0] * (x.ndim - 1)
        y = _ap("slice", [x], begins=begins, ends=[j + 1] + list(x.shape[1:]), steps=[])
        return _ap("reshape", [y], shape=list(x.shape[1:]))
    items = _parse(x, key)
    if not any(k in ("adv", "newadv") for k, _ in items):
        return _basic(x, items)
    # Advanced indexing.  First apply slices and new axes, keeping one dim per item
    # (ints become 0-d index arrays, as NumPy treats them next to arrays).
    basic, adv, xdim, ydim, order = [], [], 0, 0, []
    for item, (kind, p) in enumerate(items):
        if kind == "sep":
            continue
        if kind == "int":
            basic.append(("slice", builtins.slice(None)))
            adv.append((ydim, np.asarray(p, np.int64), xdim))
            xdim += 1
        elif kind == "adv":
            basic.append(("slice", builtins.slice(None)))
            adv.append((ydim, p, xdim))
            xdim += 1
        elif kind == "newadv":
            basic.append(("new", None))
            adv.append((ydim, p, -1))
        else:
            basic.append((kind, p))
            xdim += kind == "slice"
        if kind in ("int", "adv", "newadv"):
            order.append(item)
        ydim += 1
    y = _basic(x, basic)
    positions = [a[0] for a in adv]
    try:
        bshape = _broadcast_shape([tuple(a[1].shape) for a in adv], "index")
    except ValueError:
        shapes = " ".join(str(tuple(a[1].shape)) for a in adv)
        raise IndexError("shape mismatch: indexing arrays could not be broadcast together "
                         f"with shapes {shapes}") from None
    indices = []
    for pos, idx, xd in adv:
        if isinstance(idx, Var):
            indices.append(idx)
        elif idx.ndim == 0 or int(np.prod(bshape)):  # NumPy checks only the indices it uses (and ints)
            indices.append(_checked(idx, y.shape[pos], xd if xd >= 0 else pos))
        else:
            indices.append(np.zeros(idx.shape, np.int64))
    if not int(np.prod(bshape)):
        for pos, idx, xd in adv:  # a 0-d Var is an integer index: NumPy checks it even here
            if isinstance(idx, Var) and idx.ndim == 0:
                _checked(np.asarray(idx.read(), np.int64), y.shape[pos], xd)
    k = len(positions)
    if k == 1:
        return _ap("gather", [y, _index_var(indices[0])], axis=positions[0])
    p0 = positions[0]
    adjacent = order == list(range(order[0], order[0] + k))  # neighbours in the key itself
    rest = [d for d in range(y.ndim) if d not in positions]
    dims = [y.shape[p] for p in positions]
    if not any(isinstance(i, Var) for i in indices):
        # Static indices: one flat index into the merged indexed dims, then a gather.
        flat = np.ravel_multi_index([np.broadcast_to(i, bshape) for i in indices], dims) if int(
            np.prod(dims)) else np.zeros(bshape, np.int64)
        if adjacent:
            shape = list(y.shape[:p0]) + [int(np.prod(dims))] + list(y.shape[p0 + k:])
            merged = _ap("reshape", [y], shape=shape)
            return _ap("gather", [merged, _const(flat.astype(np.int64))], axis=p0)
        yt = transpose(y, positions + rest)
        merged = _ap("reshape", [yt], shape=[int(np.prod(dims))] + [y.shape[d] for d in rest])
        return _ap("gather", [merged, _const(flat.astype(np.int64))], axis=0)
    # Data-dependent indices: gather_nd over the indexed dims moved to the front.
    cols = []
    for i in indices:
        v = _index_var(i)
        if v.dtype.name != "int64":
            v = v.astype("int64")
        cols.append(_ap("reshape", [broadcast_to(v, bshape)], shape=list(bshape) + [1]))
    stacked = _ap("concat", cols, axis=len(bshape))
    yt = y if positions == list(range(k)) else transpose(y, positions + rest)
    out = _ap("gather_nd", [yt, stacked])
    if adjacent and p0 > 0:
        nb = len(bshape)
        perm = [nb + i for i in range(p0)] + list(range(nb)) + [nb + i for i in range(p0, len(rest))]
        out = transpose(out, perm)
    return out


# ---- x[key] = value -------------------------------------------------------------------------


def _fit_value(v: Var, shape: tuple) -> Var:
    """``v`` broadcast to ``shape`` (leading size-1 dims of v dropped first), or ValueError."""
    vshape = v.shape
    while len(vshape) > len(shape) and vshape[0] == 1:
        vshape = vshape[1:]
    try:
        ok = len(vshape) <= len(shape) and _broadcast_shape([vshape, shape], "setitem") == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"could not broadcast input array from shape {v.shape} into shape {tuple(shape)}")
    if vshape != v.shape:
        v = _ap("reshape", [v], shape=list(vshape))
    return v


def _setitem(self: Var, key: Any, value: Any) -> None:
    x = self
    v = value if isinstance(value, Var) else asarray(value, x.dtype)
    if v.dtype != x.dtype:
        v = v.astype(x.dtype)
    new = _update(x, key, v)
    self._rebind(new)


def _only_mask(key: Any) -> Any:
    """The mask when ``key`` is one boolean array/Var (optionally followed by ``...``), else None."""
    k = key
    if isinstance(key, tuple):
        if len(key) == 2 and key[1] is Ellipsis:
            k = key[0]
        elif len(key) == 1:
            k = key[0]
        else:
            return None
    if isinstance(k, Var):
        return k if k.dtype.name == "bool" and k.ndim > 0 else None
    if isinstance(k, np.ndarray) and k.dtype == np.bool_ and k.ndim > 0:
        return k
    return None


def _update(x: Var, key: Any, v: Var) -> Var:
    mask = _only_mask(key)
    if mask is not None and mask.ndim <= x.ndim and tuple(mask.shape) == x.shape[:mask.ndim]:
        rest = x.shape[mask.ndim:]
        vshape = v.shape
        while len(vshape) > len(rest) and vshape[0] == 1:
            vshape = vshape[1:]
        if len(vshape) <= len(rest) and _broadcast_ok(vshape, rest):
            # The value does not depend on how many elements the mask selects: no need to read the mask.
            from .elementwise import where

            m = mask if isinstance(mask, Var) else _const(mask)
            m = _ap("reshape", [m], shape=list(mask.shape) + [1] * len(rest))
            if vshape != v.shape:
                v = _ap("reshape", [v], shape=list(vshape))
            return where(m, v, x)
    items = _parse(x, key)
    if not any(k in ("adv", "newadv") for k, _ in items):
        out = _update_basic(x, items, v)
        if out is not None:
            return out
    # x[idx] = v along axis 0: scatter directly.
    if (len(items) >= 1 and items[0][0] == "adv" and all(
            k == "sep" or (k == "slice" and p == builtins.slice(None)) for k, p in items[1:])):
        idx = items[0][1]
        if not isinstance(idx, Var):
            idx = _checked(idx, x.shape[0], 0)
        ishape = tuple(idx.shape)
        vb = broadcast_to(_fit_value(v, ishape + x.shape[1:]), ishape + x.shape[1:])
        iv = _index_var(idx)
        return _ap("scatter_nd", [x, _ap("reshape", [iv], shape=list(ishape) + [1]), vb])
    # General: the flat positions x[key] selects, then one scatter.
    positions = _getitem(_const(np.arange(x.size, dtype=np.int64).reshape(x.shape)), key)
    vb = broadcast_to(_fit_value(v, positions.shape), positions.shape)
    flat = _ap("scatter_nd", [ravel(x), _ap("reshape", [positions], shape=[-1, 1]), ravel(vb)])
    return _ap("reshape", [flat], shape=list(x.shape))


def _broadcast_ok(a: tuple, b: tuple) -> bool:
    try:
        return _broadcast_shape([a, b], "setitem") == tuple(b)
    except ValueError:
        return False


def _update_basic(x: Var, items: list, v: Var) -> Var | None:
    """x with the box selected by ints/slices/new axes replaced by v, as one raster; None if the
    region needs too many dims."""
    xs = _strides(x.shape)
    size, dst_str, doff = [], [], 0
    sel_shape, sel_dims = [], []  # the indexed shape, and for each of its dims the x dim (or -1)
    dim = 0
    for kind, p in items:
        if kind == "sep":
            continue
        if kind == "new":
            sel_shape.append(1)
            sel_dims.append(-1)
            continue
        n = x.shape[dim]
        if kind == "int":
            i = p + n if p < 0 else p
            if not 0 <= i < n:
                raise IndexError(f"index {p} is out of bounds for axis {dim} with size {n}")
            size.append(1), dst_str.append(xs[dim])
            doff += i * xs[dim]
        else:
            start, _, step = p.indices(n)
            length = len(range(*p.indices(n)))
            size.append(length), dst_str.append(step * xs[dim])
            doff += (start if length else 0) * xs[dim]
            sel_shape.append(length)
            sel_dims.append(dim)
        dim += 1
    v = _fit_value(v, tuple(sel_shape))
    if 0 in sel_shape:
        return _same(x)
    vst = [0] * len(sel_shape)  # v's strides over the indexed shape (0 where broadcast)
    vs = _strides(v.shape)
    off = len(sel_shape) - v.ndim
    for i in range(v.ndim):
        vst[off + i] = vs[i] if v.shape[i] != 1 else 0
    src_str = [0] * x.ndim
    for j, d in enumerate(sel_dims):
        if d >= 0:
            src_str[d] = vst[j]
    if all(s == n for s, n in zip(size, x.shape)) and all(st == c for st, c in zip(dst_str, xs)):
        return reshape(broadcast_to(v, sel_shape), x.shape)  # the whole of x is replaced
    region = _region(1, size, 0, src_str, doff, dst_str)
    if region is None:
        return None
    whole = _region(0, [x.size], 0, [1], 0, [1])
    return _ap("raster", [x, v], regions=whole + region, shape=list(x.shape))


def _getitem_method(self: Var, key: Any) -> Var:
    return _getitem(self, key)


def _take_method(self: Var, indices: Any, axis: int | None = None, mode: str = "raise") -> Var:
    return take(self, indices, axis, mode)


attach(__getitem__=_getitem_method, __setitem__=_setitem, take=_take_method)

__all__ = ["take", "gather", "gather_nd", "take_along_axis", "put_along_axis", "scatter", "scatter_nd",
           "one_hot", "strided_slice"]

_ = (Sequence, _OP_ID)
