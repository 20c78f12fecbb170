"""Movement ops: reshape, transpose, slicing, broadcasting, joining, splitting, padding, tiling, flipping.

Every function here lowers natively to one *raster* primitive (strided region
copies), except ``reshape`` of a computed value, which shares its bytes.  All
results are new values: unlike NumPy views, writing into a result
(``y[0] = 1``) never changes the Var it came from.

Conventions that differ from NumPy or MNN:

- ``reshape``: a ``0`` in the new shape is a zero-size dim as in NumPy when that
  gives a valid reshape; otherwise it copies the input's dim at that position
  (MNN's convention), so ``reshape(x, [0, -1])`` keeps the first dim.
- ``split`` follows NumPy (a list gives split *indices*); MNN's size list is
  ``split(x, size_splits=[...], axis=...)``.
- ``pad`` accepts NumPy's ``pad_width`` forms and MNN's ``paddings`` ``[ndim, 2]``;
  modes constant, reflect, symmetric, edge and wrap (MNN's CONSTANT/REFLECT/SYMMETRIC
  names and enum values work too).
- Arguments that MNN lets be Vars (shapes, perms, paddings, repeats) are read,
  which computes them.

>>> import mnn_expr as F
>>> x = F.arange(6).reshape(2, 3)
>>> x.T.shape, F.concatenate([x, x], axis=1).shape, F.pad(x, 1).shape
((3, 2), (2, 6), (4, 5))
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from . import _native
from ._core import normalize_axis
from ._dtype import as_dtype
from ._native import Var
from ._var import attach
from .creation import asarray

ArrayLike = Any
AxisLike = Union[int, Sequence[int], None]

_OP_ID = {row[0]: i for i, row in enumerate(_native.op_table())}
_MAX_REGION_DIMS = 8
_BIG = 2**63 - 1  # an omitted slice bound


def _ap(op: str, inputs: list, **attrs: Any) -> Var:
    return _native.apply(_OP_ID[op], inputs, attrs)[0]


def _ints(v: Any, what: str, op: str) -> list:
    """A list of Python ints from an int, a sequence, a numpy array or a Var (read)."""
    if isinstance(v, Var):
        v = v.read()
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "iub":
            raise TypeError(f"{op}: {what} must be integers, got dtype {v.dtype}")
        return [int(e) for e in v.reshape(-1)]
    if isinstance(v, (int, np.integer)):
        return [int(v)]
    try:
        out = []
        for e in v:
            if isinstance(e, (float, np.floating)) or not hasattr(e, "__index__"):
                raise TypeError
            out.append(int(e))
        return out
    except TypeError:
        raise TypeError(f"{op}: {what} must be an int or a sequence of ints, got {v!r}") from None


def _same(x: Var) -> Var:
    """A new handle to x's value (so rebinding one never affects the other)."""
    return _ap("reshape", [x], shape=x.shape)


def _coalesce(size: Sequence[int], sstr: Sequence[int], dstr: Sequence[int]) -> list | None:
    """Raster dims with size-1 dims dropped and contiguous neighbours merged; [] if empty copy."""
    dims = []
    for n, a, b in zip(size, sstr, dstr):
        if n == 0:
            return []
        if n != 1:
            dims.append([n, a, b])
    merged: list = []
    for n, a, b in reversed(dims):
        if merged and a == merged[-1][1] * merged[-1][0] and b == merged[-1][2] * merged[-1][0]:
            merged[-1][0] *= n
        else:
            merged.append([n, a, b])
    merged.reverse()
    return merged if merged else [[1, 0, 0]]


def _region(src: int, size: Sequence[int], soff: int, sstr: Sequence[int], doff: int,
            dstr: Sequence[int]) -> list | None:
    """One raster region record (see ``raster``), or None when it needs more than 8 dims."""
    dims = _coalesce(size, sstr, dstr)
    if dims is None or len(dims) > _MAX_REGION_DIMS:
        return None
    if not dims:
        return []
    return ([src, len(dims), soff, doff] + [d[0] for d in dims] + [d[1] for d in dims] + [d[2] for d in dims])


def _strides(shape: Sequence[int]) -> list:
    st, acc = [0] * len(shape), 1
    for i in range(len(shape) - 1, -1, -1):
        st[i] = acc
        acc *= shape[i]
    return st


# ---- raster -----------------------------------------------------------------------


def raster(inputs: Sequence[ArrayLike], regions: Sequence[int], shape: Sequence[int]) -> Var:
    """Copies strided regions of ``inputs`` into a new Var of ``shape`` (the movement primitive).

    ``regions`` is a flat list of records
    ``[src, ndim, src_offset, dst_offset, size[ndim], src_stride[ndim], dst_stride[ndim]]``
    (element offsets and strides into the flattened tensors, negative strides allowed,
    ``0 <= ndim <= 8``; ``src = -1`` reads the destination as written by earlier regions).
    Regions run in order; elements no region writes are 0.  Every region is checked
    against the bounds of its source and the destination.  Inputs must share a dtype.

    >>> import mnn_expr as F
    >>> F.raster([F.arange(4)], [0, 1, 3, 0, 4, -1, 1], [4]).tolist()  # reverse
    [3, 2, 1, 0]
    """
    xs = [asarray(v) for v in inputs]
    regs = _ints(regions, "regions", "raster")
    return _ap("raster", xs, regions=regs, shape=_ints(shape, "shape", "raster"))


# ---- reshaping --------------------------------------------------------------------


def reshape(x: ArrayLike, shape: Any, original_format: Any = None) -> Var:
    """``x`` with a new shape of the same size; one dim may be -1 (inferred).

    A 0 is a zero-size dim when that is a valid NumPy reshape, otherwise it copies
    the input's dim at that position (MNN).  ``original_format`` is accepted for MNN
    compatibility and ignored (layouts are always plain).

    >>> import mnn_expr as F
    >>> F.reshape(F.arange(6), (2, -1)).shape, F.reshape(F.zeros((4, 6)), [0, 2, -1]).shape
    ((2, 3), (4, 2, 3))
    """
    return _ap("reshape", [asarray(x)], shape=_ints(shape, "shape", "reshape"))


def _reshape_method(self: Var, *shape: Any, order: str = "C") -> Var:
    """``x.reshape(2, 3)`` or ``x.reshape((2, 3))``."""
    if order != "C":
        raise ValueError("reshape: only order='C' is supported")
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = shape[0]
    return _ap("reshape", [self], shape=_ints(shape, "shape", "reshape"))


def ravel(x: ArrayLike) -> Var:
    """``x`` as a 1-d Var (NumPy's ``ravel``; always a new value here).

    >>> import mnn_expr as F
    >>> F.ravel(F.zeros((2, 3))).shape
    (6,)
    """
    return _ap("reshape", [asarray(x)], shape=[-1])


def flatten(x: ArrayLike) -> Var:
    """Alias of :func:`ravel` (``ndarray.flatten``)."""
    return ravel(x)


def expand_dims(x: ArrayLike, axis: Any) -> Var:
    """``x`` with size-1 dims inserted at ``axis`` (an int or a tuple; positions in the result).

    >>> import mnn_expr as F
    >>> F.expand_dims(F.zeros((2, 3)), (0, -1)).shape
    (1, 2, 3, 1)
    """
    x = asarray(x)
    axes = _ints(axis, "axis", "expand_dims")
    nd = x.ndim + len(axes)
    pos = [normalize_axis(a, nd, "expand_dims") for a in axes]
    if len(set(pos)) != len(pos):
        raise ValueError(f"expand_dims: repeated axis in {axis!r}")
    it = iter(x.shape)
    shape = [1 if i in pos else next(it) for i in range(nd)]
    return _ap("reshape", [x], shape=shape)


def unsqueeze(x: ArrayLike, axes: Any = ()) -> Var:
    """MNN's ``unsqueeze(x, axes)``: :func:`expand_dims` with a list of axes."""
    return expand_dims(x, axes)


def squeeze(x: ArrayLike, axis: AxisLike = None) -> Var:
    """``x`` without size-1 dims: all of them (``axis=None``, or MNN's default ``[]``), or those listed.

    >>> import mnn_expr as F
    >>> F.squeeze(F.zeros((1, 3, 1))).shape, F.squeeze(F.zeros((1, 3, 1)), 0).shape
    ((3,), (3, 1))
    """
    x = asarray(x)
    if axis is None or (isinstance(axis, list) and len(axis) == 0):  # () squeezes nothing, as NumPy
        return _ap("reshape", [x], shape=[d for d in x.shape if d != 1])
    axes = [normalize_axis(a, x.ndim, "squeeze") for a in _ints(axis, "axis", "squeeze")]
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: cannot squeeze axis {a} of size {x.shape[a]} (shape {x.shape}); "
                             "only size-1 axes can be removed")
    return _ap("reshape", [x], shape=[d for i, d in enumerate(x.shape) if i not in axes])


def atleast_1d(*xs: ArrayLike) -> Any:
    """Each input with at least one dim (a list when several are given)."""
    out = []
    for v in xs:
        v = asarray(v)
        out.append(reshape(v, [1]) if v.ndim == 0 else v)
    return out[0] if len(out) == 1 else out


def atleast_2d(*xs: ArrayLike) -> Any:
    """Each input with at least two dims (1-d ``(n,)`` becomes ``(1, n)``)."""
    out = []
    for v in xs:
        v = asarray(v)
        out.append(reshape(v, [1] * (2 - v.ndim) + list(v.shape)) if v.ndim < 2 else v)
    return out[0] if len(out) == 1 else out


def atleast_3d(*xs: ArrayLike) -> Any:
    """Each input with at least three dims (``(n,)`` -> ``(1, n, 1)``, ``(m, n)`` -> ``(m, n, 1)``)."""
    out = []
    for v in xs:
        v = asarray(v)
        shape = {0: [1, 1, 1], 1: [1, v.size, 1], 2: list(v.shape) + [1]}.get(v.ndim)
        out.append(reshape(v, shape) if shape is not None else v)
    return out[0] if len(out) == 1 else out


# ---- transposing ------------------------------------------------------------------


def transpose(x: ArrayLike, axes: Any = None) -> Var:
    """``x`` with its axes permuted by ``axes`` (reversed when None); MNN's ``transpose(x, perm)``.

    >>> import mnn_expr as F
    >>> F.transpose(F.zeros((2, 3, 4)), (1, 2, 0)).shape
    (3, 4, 2)
    """
    x = asarray(x)
    perm = list(range(x.ndim))[::-1] if axes is None else _ints(axes, "axes", "transpose")
    if perm == list(range(x.ndim)):
        return _same(x)
    return _ap("transpose", [x], perm=perm)


def permute_dims(x: ArrayLike, axes: Any = None) -> Var:
    """Array-API name of :func:`transpose`."""
    return transpose(x, axes)


def _transpose_method(self: Var, *axes: Any) -> Var:
    """``x.transpose()``, ``x.transpose(1, 0)`` or ``x.transpose((1, 0))``."""
    if not axes:
        return transpose(self)
    if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
        axes = axes[0]
    return transpose(self, axes)


def swapaxes(x: ArrayLike, axis1: int, axis2: int) -> Var:
    """``x`` with two axes exchanged.

    >>> import mnn_expr as F
    >>> F.swapaxes(F.zeros((2, 3, 4)), 0, -1).shape
    (4, 3, 2)
    """
    x = asarray(x)
    a, b = normalize_axis(axis1, x.ndim, "swapaxes"), normalize_axis(axis2, x.ndim, "swapaxes")
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def moveaxis(x: ArrayLike, source: Any, destination: Any) -> Var:
    """``x`` with the axes ``source`` moved to positions ``destination`` (others keep their order).

    >>> import mnn_expr as F
    >>> F.moveaxis(F.zeros((2, 3, 4)), 0, -1).shape
    (3, 4, 2)
    """
    x = asarray(x)
    src = [normalize_axis(a, x.ndim, "moveaxis") for a in _ints(source, "source", "moveaxis")]
    dst = [normalize_axis(a, x.ndim, "moveaxis") for a in _ints(destination, "destination", "moveaxis")]
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination must have the same number of elements")
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError("moveaxis: repeated axis")
    order = [a for a in range(x.ndim) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


# ---- broadcasting -----------------------------------------------------------------


def broadcast_to(x: ArrayLike, shape: Any) -> Var:
    """``x`` repeated along size-1 (or missing leading) dims to ``shape``.

    >>> import mnn_expr as F
    >>> F.broadcast_to(F.array([1, 2, 3]), (2, 3)).tolist()
    [[1, 2, 3], [1, 2, 3]]
    """
    x = asarray(x)
    shape = _ints(shape, "shape", "broadcast_to")
    if tuple(shape) == x.shape:
        return _same(x)
    return _ap("broadcast_to", [x], shape=shape)


def broadcast_like(x: ArrayLike, like: Var) -> Var:
    """``x`` broadcast to the shape of ``like`` (torch's ``expand_as``); ``like``'s values are
    not read.  In a graph the target size comes from ``like`` when it runs, so the same graph
    serves every size of a dynamic dim (gradient rules use it when ``F.compile`` traces with
    ``dynamic_axes``).

    >>> import mnn_expr as F
    >>> F.broadcast_like(F.array([1, 2, 3]), F.zeros((2, 3))).tolist()
    [[1, 2, 3], [1, 2, 3]]
    """
    x = asarray(x)
    if not isinstance(like, Var):
        raise TypeError(f"broadcast_like: like must be a Var, got {type(like).__name__}")
    return _ap("broadcast_like", [x, like])


def _broadcast_shape(shapes: Sequence[tuple], op: str) -> tuple:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = " ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{op}: shapes {listed} cannot be broadcast together") from None


def broadcast_arrays(*args: ArrayLike) -> list:
    """The inputs broadcast against each other (a list of Vars).

    >>> import mnn_expr as F
    >>> [v.shape for v in F.broadcast_arrays(F.zeros((2, 1)), F.zeros(3))]
    [(2, 3), (2, 3)]
    """
    xs = [asarray(a) for a in args]
    shape = _broadcast_shape([x.shape for x in xs], "broadcast_arrays")
    return [broadcast_to(x, shape) for x in xs]


# ---- joining ----------------------------------------------------------------------


def concatenate(arrays: Sequence[ArrayLike], axis: int | None = 0, dtype: Any = None) -> Var:
    """The inputs joined along an existing ``axis`` (flattened first when ``axis`` is None).

    Inputs are promoted to one dtype (or cast to ``dtype``).

    >>> import mnn_expr as F
    >>> F.concatenate([F.array([1, 2]), F.array([3.5])]).tolist()
    [1.0, 2.0, 3.5]
    """
    if isinstance(arrays, Var):
        arrays = list(arrays)
    xs = [asarray(a) for a in arrays]
    if not xs:
        raise ValueError("concatenate: need at least one array to concatenate")
    if axis is None:
        xs, axis = [ravel(x) for x in xs], 0
    want = as_dtype(dtype) if dtype is not None else as_dtype(_native.result_dtype(*xs))
    xs = [x if x.dtype == want else x.astype(want) for x in xs]
    if len(xs) == 1:
        if xs[0].ndim == 0:
            raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
        normalize_axis(axis, xs[0].ndim, "concatenate")
        return _same(xs[0])
    return _ap("concat", xs, axis=int(axis))


def concat(values: Sequence[ArrayLike], axis: int) -> Var:
    """MNN's ``concat(values, axis)``: :func:`concatenate`."""
    return concatenate(values, axis)


def stack(arrays: Sequence[ArrayLike], axis: int = 0) -> Var:
    """The inputs (all of one shape) joined along a new ``axis``.

    >>> import mnn_expr as F
    >>> F.stack([F.zeros(3), F.ones(3)], axis=1).shape
    (3, 2)
    """
    if isinstance(arrays, Var):
        arrays = list(arrays)
    xs = [asarray(a) for a in arrays]
    if not xs:
        raise ValueError("stack: need at least one array to stack")
    if any(x.shape != xs[0].shape for x in xs):
        raise ValueError(f"stack: all input arrays must have the same shape, got {[x.shape for x in xs]}")
    ax = normalize_axis(axis, xs[0].ndim + 1, "stack")
    return concatenate([expand_dims(x, ax) for x in xs], ax)


def hstack(arrays: Sequence[ArrayLike]) -> Var:
    """Joined along axis 1 (axis 0 for 1-d inputs).

    >>> import mnn_expr as F
    >>> F.hstack([F.zeros(2), F.ones(3)]).shape
    (5,)
    """
    xs = [atleast_1d(a) for a in arrays]
    return concatenate(xs, 0 if xs and xs[0].ndim == 1 else 1)


def vstack(arrays: Sequence[ArrayLike]) -> Var:
    """Joined along axis 0, 1-d inputs becoming rows.

    >>> import mnn_expr as F
    >>> F.vstack([F.zeros(3), F.ones(3)]).shape
    (2, 3)
    """
    return concatenate([atleast_2d(a) for a in arrays], 0)


def dstack(arrays: Sequence[ArrayLike]) -> Var:
    """Joined along axis 2 (inputs made at least 3-d)."""
    return concatenate([atleast_3d(a) for a in arrays], 2)


def column_stack(arrays: Sequence[ArrayLike]) -> Var:
    """1-d inputs as columns (others as they are), joined along axis 1."""
    xs = []
    for a in arrays:
        a = asarray(a)
        xs.append(reshape(a, [-1, 1]) if a.ndim < 2 else a)
    return concatenate(xs, 1)


row_stack = vstack

# ---- splitting --------------------------------------------------------------------


def _slice_axis(x: Var, axis: int, start: int, stop: int) -> Var:
    begins, ends = [0] * x.ndim, list(x.shape)
    begins[axis], ends[axis] = start, stop
    return _ap("slice", [x], begins=begins, ends=ends, steps=[])


def _split_at(x: Var, bounds: Sequence[int], axis: int) -> list:
    n = x.shape[axis]
    out = []
    for a, b in zip([0] + list(bounds), list(bounds) + [n]):
        out.append(_slice_axis(x, axis, a, b))
    return out


def split(x: ArrayLike, indices_or_sections: Any = None, axis: int = 0, *, size_splits: Any = None) -> list:
    """``x`` cut along ``axis`` into equal parts (an int) or at the given indices (a list), as NumPy.

    MNN's ``split(x, size_splits, axis)`` with a list of part *sizes* is spelled
    ``split(x, size_splits=[...], axis=...)``.

    >>> import mnn_expr as F
    >>> [v.shape for v in F.split(F.zeros(6), 3)], [v.shape for v in F.split(F.zeros(6), [1, 4])]
    ([(2,), (2,), (2,)], [(1,), (3,), (2,)])
    >>> [v.shape for v in F.split(F.zeros(6), size_splits=[1, 5])]
    [(1,), (5,)]
    """
    x = asarray(x)
    ax = normalize_axis(axis, x.ndim, "split")
    n = x.shape[ax]
    if size_splits is not None:
        sizes = _ints(size_splits, "size_splits", "split")
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError(f"split: size_splits {sizes} must be >= 0 and sum to the axis size {n}")
        return _split_at(x, list(np.cumsum(sizes[:-1]).tolist()), ax)
    if indices_or_sections is None:
        raise TypeError("split: give indices_or_sections or size_splits")
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError("split: number of sections must be larger than 0")
        if n % k:
            raise ValueError(f"split: array split does not result in an equal division ({n} into {k})")
        return _split_at(x, [i * (n // k) for i in range(1, k)], ax)
    return _split_at(x, _ints(indices_or_sections, "indices", "split"), ax)


def array_split(x: ArrayLike, indices_or_sections: Any, axis: int = 0) -> list:
    """Like :func:`split`, but ``k`` sections need not divide the axis (the first parts are one longer).

    >>> import mnn_expr as F
    >>> [v.shape for v in F.array_split(F.zeros(7), 3)]
    [(3,), (2,), (2,)]
    """
    x = asarray(x)
    ax = normalize_axis(axis, x.ndim, "array_split")
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError("array_split: number of sections must be larger than 0")
        n = x.shape[ax]
        each, extra = divmod(n, k)
        sizes = [each + 1] * extra + [each] * (k - extra)
        return _split_at(x, list(np.cumsum(sizes[:-1]).tolist()), ax)
    return split(x, indices_or_sections, ax)


def unstack(x: ArrayLike, axis: int = 0) -> list:
    """The slices of ``x`` along ``axis``, that axis removed (MNN's ``unstack``).

    >>> import mnn_expr as F
    >>> [v.shape for v in F.unstack(F.zeros((2, 3)), axis=1)]
    [(2,), (2,), (2,)]
    """
    x = asarray(x)
    ax = normalize_axis(axis, x.ndim, "unstack")
    shape = [d for i, d in enumerate(x.shape) if i != ax]
    return [_ap("reshape", [_slice_axis(x, ax, i, i + 1)], shape=shape) for i in range(x.shape[ax])]


# ---- repeating --------------------------------------------------------------------


def tile(x: ArrayLike, reps: Any) -> Var:
    """``x`` repeated ``reps`` times along each axis (NumPy rules); MNN's ``tile(x, multiples)``.

    >>> import mnn_expr as F
    >>> F.tile(F.array([1, 2]), 2).tolist(), F.tile(F.array([1, 2]), (2, 1)).shape
    ([1, 2, 1, 2], (2, 2))
    """
    x = asarray(x)
    reps = _ints(reps, "reps", "tile")
    if len(reps) < x.ndim:
        reps = [1] * (x.ndim - len(reps)) + reps
    elif len(reps) > x.ndim:
        x = reshape(x, [1] * (len(reps) - x.ndim) + list(x.shape))
    if all(r == 1 for r in reps):
        return _same(x)
    return _ap("tile", [x], reps=reps)


def repeat(x: ArrayLike, repeats: Any, axis: int | None = None) -> Var:
    """Each element repeated ``repeats`` times (an int, or one count per element) along ``axis``.

    ``axis=None`` repeats the flattened input.  Per-element counts given as a Var are read.

    >>> import mnn_expr as F
    >>> F.repeat(F.array([1, 2]), 2).tolist(), F.repeat(F.array([1, 2]), [1, 3]).tolist()
    ([1, 1, 2, 2], [1, 2, 2, 2])
    """
    x = asarray(x)
    if axis is None:
        x, ax = ravel(x), 0
    else:
        ax = normalize_axis(axis, x.ndim, "repeat")
    n = x.shape[ax]
    reps = np.asarray(repeats.read() if isinstance(repeats, Var) else repeats)
    if reps.size == 0:
        reps = reps.astype(np.int64)
    if reps.dtype.kind not in "iub":
        raise TypeError(f"repeat: repeats must be integers, got {reps.dtype}")
    if reps.ndim > 1:
        raise ValueError("repeat: repeats must be an int or a 1-d sequence")
    if np.any(reps < 0):
        raise ValueError("repeat: repeats may not contain negative values")
    if reps.size == 1:
        r = int(reps.reshape(-1)[0])
        shape = list(x.shape)
        expanded = shape[: ax + 1] + [1] + shape[ax + 1:]
        wide = shape[: ax + 1] + [r] + shape[ax + 1:]
        y = _ap("broadcast_to", [reshape(x, expanded)], shape=wide)
        return reshape(y, shape[:ax] + [n * r] + shape[ax + 1:])
    if reps.size != n:
        raise ValueError(f"repeat: {reps.size} repeats given for an axis of size {n}")
    idx = np.repeat(np.arange(n, dtype=np.int64), reps.astype(np.int64))
    return _native.apply(_OP_ID["gather"], [x, _native.from_numpy(idx, copy=False)], {"axis": ax})[0]


# ---- padding ----------------------------------------------------------------------

_PAD_MODES = {"constant": "constant", "reflect": "reflect", "symmetric": "symmetric", "edge": "edge",
              "wrap": "wrap", "replicate": "edge", "circular": "wrap"}
_PAD_ENUM = {0: "constant", 1: "reflect", 2: "symmetric"}  # MNN's PadValue_Mode


def pad(x: ArrayLike, pad_width: Any = None, mode: Any = "constant", constant_values: Any = 0, *,
        paddings: Any = None) -> Var:
    """``x`` padded by ``pad_width`` (NumPy forms: an int, ``(before, after)``, or one pair per axis).

    Modes: ``constant`` (``constant_values``: a scalar or NumPy's per-axis pairs), ``reflect``
    (mirror without the edge), ``symmetric`` (mirror with the edge), ``edge`` and ``wrap``.
    MNN's ``pad(x, paddings, mode)`` with a ``[ndim, 2]`` list or Var and mode
    ``CONSTANT``/``REFLECT``/``SYMMETRIC`` (names or enum values 0/1/2) works too.

    >>> import mnn_expr as F
    >>> F.pad(F.array([1, 2, 3]), (1, 2), mode="reflect").tolist()
    [2, 1, 2, 3, 2, 1]
    """
    x = asarray(x)
    if paddings is not None:
        pad_width = paddings
    if pad_width is None:
        raise TypeError("pad: pad_width is required")
    if isinstance(pad_width, Var):
        pad_width = pad_width.read()
    pw = np.asarray(pad_width)
    if pw.dtype.kind not in "iu":
        raise TypeError(f"pad: pad_width must be integers, got {pad_width!r}")
    try:
        pairs = np.broadcast_to(pw, (x.ndim, 2)).astype(np.int64)
    except ValueError:
        raise ValueError(f"pad: pad_width of shape {pw.shape} does not fit a {x.ndim}-d input "
                         "(expected an int, (before, after) or one pair per axis)") from None
    if isinstance(mode, (int, np.integer)) and not isinstance(mode, bool):
        if int(mode) not in _PAD_ENUM:
            raise ValueError(f"pad: unknown mode {mode!r}")
        m = _PAD_ENUM[int(mode)]
    else:
        m = _PAD_MODES.get(str(getattr(mode, "name", mode)).lower())
        if m is None:
            raise ValueError(f"pad: unknown mode {mode!r} "
                             "(expected constant, reflect, symmetric, edge or wrap)")
    if np.any(pairs < 0):
        raise ValueError(f"pad: pad widths must be >= 0, got {pairs.tolist()}")
    if m != "constant":
        return _ap("pad", [x], pads=pairs.reshape(-1).tolist(), mode=m)
    cv = np.asarray(constant_values.read() if isinstance(constant_values, Var) else constant_values)
    if cv.size == 1:
        return _ap("pad", [x], pads=pairs.reshape(-1).tolist(), mode="constant", value=_pad_value(cv, x))
    try:
        cvs = np.broadcast_to(cv, (x.ndim, 2))
    except ValueError:
        raise ValueError(f"pad: constant_values of shape {cv.shape} does not fit "
                         f"a {x.ndim}-d input") from None
    y = x
    for ax in range(x.ndim):  # NumPy pads axis by axis, later axes covering the corners
        for side in (0, 1):
            if pairs[ax, side]:
                p = [0] * (2 * x.ndim)
                p[2 * ax + side] = int(pairs[ax, side])
                y = _ap("pad", [y], pads=p, mode="constant", value=_pad_value(cvs[ax, side], x))
    return y if y is not x else _same(x)


def _pad_value(v: Any, x: Var) -> float:
    """The fill value as NumPy would store it in x's dtype."""
    arr = np.asarray(v).reshape(-1)[:1]
    return float(arr.astype(x.dtype.numpy)[0])


# ---- flipping and rolling -----------------------------------------------------------


def flip(x: ArrayLike, axis: AxisLike = None) -> Var:
    """``x`` with the order of elements reversed along ``axis`` (all axes when None); MNN's ``reverse``.

    >>> import mnn_expr as F
    >>> F.flip(F.array([[1, 2], [3, 4]]), 1).tolist()
    [[2, 1], [4, 3]]
    """
    x = asarray(x)
    axes = list(range(x.ndim)) if axis is None else _ints(axis, "axis", "flip")
    return _ap("flip", [x], axes=axes)


def reverse(x: ArrayLike, axis: Any) -> Var:
    """MNN's ``reverse(x, axis)``: :func:`flip`."""
    return flip(x, axis)


def fliplr(x: ArrayLike) -> Var:
    """``x`` flipped along axis 1 (needs ndim >= 2)."""
    x = asarray(x)
    if x.ndim < 2:
        raise ValueError(f"fliplr: input must be >= 2-d, got shape {x.shape}")
    return flip(x, 1)


def flipud(x: ArrayLike) -> Var:
    """``x`` flipped along axis 0 (needs ndim >= 1)."""
    x = asarray(x)
    if x.ndim < 1:
        raise ValueError("flipud: input must be >= 1-d")
    return flip(x, 0)


def roll(x: ArrayLike, shift: Any, axis: AxisLike = None) -> Var:
    """``x`` with elements shifted cyclically by ``shift`` along ``axis`` (flattened when None).

    >>> import mnn_expr as F
    >>> F.roll(F.arange(5), 2).tolist(), F.roll(F.arange(6).reshape(2, 3), (1, -1), (0, 1)).tolist()
    ([3, 4, 0, 1, 2], [[4, 5, 3], [1, 2, 0]])
    """
    x = asarray(x)
    if axis is None:
        return reshape(roll(ravel(x), shift, 0), x.shape)
    shifts, axes = np.broadcast_arrays(np.asarray(_ints(shift, "shift", "roll")),
                                       np.asarray(_ints(axis, "axis", "roll")))
    total = [0] * x.ndim
    for s, a in zip(shifts.tolist(), axes.tolist()):
        total[normalize_axis(a, x.ndim, "roll")] += s
    segs = []
    for ax, n in enumerate(x.shape):
        s = total[ax] % n if n else 0
        segs.append([(0, 0, n)] if s == 0 else [(0, s, n - s), (n - s, 0, s)])
    if x.size == 0 or all(len(s) == 1 for s in segs):
        return _same(x)
    st = _strides(x.shape)
    regions: list = []
    for combo in np.ndindex(*[len(s) for s in segs]):
        parts = [segs[ax][c] for ax, c in enumerate(combo)]
        r = _region(0, [p[2] for p in parts], sum(p[0] * s for p, s in zip(parts, st)), st,
                    sum(p[1] * s for p, s in zip(parts, st)), st)
        if r is None:  # too many dims for one region: roll axis by axis
            y = x
            for ax, sg in enumerate(segs):
                if len(sg) == 2:
                    n, k = x.shape[ax], sg[1][2]  # the last k elements move to the front
                    y = concatenate([_slice_axis(y, ax, n - k, n), _slice_axis(y, ax, 0, n - k)], ax)
            return y
        regions += r
    return _ap("raster", [x], regions=regions, shape=list(x.shape))


# ---- box slicing ------------------------------------------------------------------


def slice(x: ArrayLike, starts: Any, sizes: Any) -> Var:  # noqa: A001  (MNN's name)
    """MNN's ``slice(x, starts, sizes)``: the box ``x[starts[i]:starts[i] + sizes[i]]`` (-1: to the end).

    >>> import mnn_expr as F
    >>> F.slice(F.arange(12).reshape(3, 4), [1, 1], [2, -1]).tolist()
    [[5, 6, 7], [9, 10, 11]]
    """
    x = asarray(x)
    b, s = _ints(starts, "starts", "slice"), _ints(sizes, "sizes", "slice")
    if len(b) != len(s) or len(b) > x.ndim:
        raise ValueError(f"slice: starts {b} and sizes {s} must have one entry per leading axis "
                         f"of shape {x.shape}")
    ends = []
    for i, (st, sz) in enumerate(zip(b, s)):
        n = x.shape[i]
        e = n if sz == -1 else st + sz
        if not (0 <= st <= n) or sz < -1 or e > n:
            raise ValueError(f"slice: start {st} with size {sz} does not fit axis {i} of size {n}")
        ends.append(e)
    return _ap("slice", [x], begins=b, ends=ends, steps=[])


__all__ = [
    "raster", "reshape", "ravel", "flatten", "expand_dims", "unsqueeze", "squeeze", "atleast_1d",
    "atleast_2d", "atleast_3d", "transpose", "permute_dims", "swapaxes", "moveaxis", "broadcast_to", "broadcast_like",
    "broadcast_arrays",
    "concatenate", "concat", "stack", "hstack", "vstack", "dstack", "column_stack", "row_stack", "split",
    "array_split", "unstack", "tile", "repeat", "pad", "flip", "reverse", "fliplr", "flipud", "roll", "slice",
]

attach(
    reshape=_reshape_method,
    ravel=ravel,
    flatten=flatten,
    transpose=_transpose_method,
    swapaxes=swapaxes,
    squeeze=squeeze,
    repeat=repeat,
)

_ = builtins  # the builtin ``slice`` stays reachable as builtins.slice
