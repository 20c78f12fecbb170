"""Linear algebra: matmul (and ``@``), dot, vdot, inner, outer, tensordot, einsum, trace.

Everything reduces to the ``matmul`` primitive (NumPy matmul semantics: 1-d
operands promoted and the added dim removed after, batch dims broadcast;
optional transposes of the last two dims) plus reshape / transpose /
reduce_sum / multiply.  Operands are promoted to one dtype first (NumPy 2
rules, float32 as the default float).

>>> import mnn_expr as F
>>> (F.array([[1.0, 2.0], [3.0, 4.0]]) @ F.array([1.0, 1.0])).tolist()
[3.0, 7.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _native
from ._core import apply1, normalize_axis
from ._dtype import promote_types
from ._native import Var
from ._var import attach
from .creation import asarray

ArrayLike = Any

__all__ = ["matmul", "dot", "vdot", "inner", "outer", "tensordot", "einsum", "trace"]


# ---- small helpers over the primitives --------------------------------------


def _promote(a: ArrayLike, b: ArrayLike) -> tuple[Var, Var]:
    a, b = asarray(a), asarray(b)
    if a.dtype != b.dtype:
        t = promote_types(a.dtype, b.dtype)
        a = a if a.dtype == t else _native.cast(a, t.name)
        b = b if b.dtype == t else _native.cast(b, t.name)
    return a, b


def _reshape(x: Var, shape: Sequence[int]) -> Var:
    shape = [int(s) for s in shape]
    if tuple(shape) == tuple(x.shape):
        return x
    return apply1("reshape", [x], shape=shape)


def _transpose(x: Var, perm: Sequence[int]) -> Var:
    perm = [int(p) for p in perm]
    if perm == list(range(len(perm))):
        return x
    return apply1("transpose", [x], perm=perm)


def _sum(x: Var, axes: Sequence[int]) -> Var:
    if not axes:
        return x
    return apply1("reduce_sum", [x], axes=[int(a) for a in axes], keepdims=False)


def _prod(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


# ---- matmul -------------------------------------------------------------------

_NO_ATTRS: dict = {}


def matmul(a: ArrayLike, b: ArrayLike, transposeA: bool = False, transposeB: bool = False, *,  # noqa: N803
           transpose_a: bool | None = None, transpose_b: bool | None = None) -> Var:
    """Matrix product with NumPy ``matmul`` semantics.

    1-d operands are promoted to matrices (and the added dim removed after);
    leading batch dims broadcast.  ``transposeA`` / ``transposeB`` (MNN's
    names; ``transpose_a`` / ``transpose_b`` also accepted) transpose the last
    two dims of an operand of ndim >= 2 first.  Operands are promoted to one dtype.

    >>> import mnn_expr as F
    >>> F.matmul(F.ones([2, 3]), F.ones([3, 4])).shape
    (2, 4)
    >>> F.matmul(F.ones([3, 2]), F.ones([3, 4]), transposeA=True).shape
    (2, 4)
    """
    ta = bool(transposeA if transpose_a is None else transpose_a)
    tb = bool(transposeB if transpose_b is None else transpose_b)
    if (type(a) is Var and type(b) is Var and a._dtype_name == b._dtype_name and a.ndim and b.ndim
            and not ta and not tb):  # the common case, kept cheap
        return _native.apply("matmul", [a, b], _NO_ATTRS)[0]
    a, b = _promote(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one dimension, got shapes {a.shape} and "
                         f"{b.shape} (use multiply for scalars)")
    return apply1("matmul", [a, b], transpose_a=ta, transpose_b=tb)


def _matmul_op(self: Var, other: ArrayLike) -> Var:
    return matmul(self, other)


def _rmatmul_op(self: Var, other: ArrayLike) -> Var:
    return matmul(other, self)


# ---- tensordot and friends -------------------------------------------------------


def _axes_list(axes: Any, ndim: int, op: str) -> list[int]:
    if isinstance(axes, (int, np.integer)):
        axes = [axes]
    return [normalize_axis(int(ax), ndim, op) for ax in axes]


def tensordot(a: ArrayLike, b: ArrayLike, axes: Any = 2) -> Var:
    """Sum of products over the given axes (NumPy ``tensordot``).

    ``axes`` is an int ``n`` (the last ``n`` axes of ``a`` with the first ``n``
    of ``b``) or a pair of axis lists.  The result has the free axes of ``a``
    then those of ``b``.

    >>> import mnn_expr as F
    >>> F.tensordot(F.ones([2, 3, 4]), F.ones([3, 4, 5]), axes=2).shape
    (2, 5)
    """
    a, b = _promote(a, b)
    op = "tensordot"
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > a.ndim or n > b.ndim:
            raise ValueError(f"{op}: axes={n} does not fit operands of shapes {a.shape} and {b.shape}")
        ax_a, ax_b = list(range(a.ndim - n, a.ndim)), list(range(n))
    else:
        try:
            ax_a_raw, ax_b_raw = axes
        except (TypeError, ValueError):
            raise TypeError(f"{op}: axes must be an int or a pair of axis lists, got {axes!r}") from None
        ax_a, ax_b = _axes_list(ax_a_raw, a.ndim, op), _axes_list(ax_b_raw, b.ndim, op)
    if len(ax_a) != len(ax_b):
        raise ValueError(f"{op}: axes lists have different lengths: {ax_a} and {ax_b}")
    if len(set(ax_a)) != len(ax_a) or len(set(ax_b)) != len(ax_b):
        raise ValueError(f"{op}: repeated axis in {axes!r}")
    for i, j in zip(ax_a, ax_b):
        if a.shape[i] != b.shape[j]:
            raise ValueError(f"{op}: shape mismatch for sum: {a.shape} axis {i} (size {a.shape[i]}) vs "
                             f"{b.shape} axis {j} (size {b.shape[j]})")
    free_a = [i for i in range(a.ndim) if i not in ax_a]
    free_b = [j for j in range(b.ndim) if j not in ax_b]
    m = _prod(a.shape[i] for i in free_a)
    n = _prod(b.shape[j] for j in free_b)
    k = _prod(a.shape[i] for i in ax_a)
    out_shape = [a.shape[i] for i in free_a] + [b.shape[j] for j in free_b]
    # a as [M, K] (or stored [K, M] when its contracted axes lead), b as [K, N] (or [N, K]).
    if ax_a == list(range(len(ax_a))) and free_a == list(range(len(ax_a), a.ndim)):
        a2, ta = _reshape(a, [k, m]), True
    else:
        a2, ta = _reshape(_transpose(a, free_a + ax_a), [m, k]), False
    if free_b == list(range(len(free_b))) and ax_b == list(range(len(free_b), b.ndim)):
        b2, tb = _reshape(b, [n, k]), True
    else:
        b2, tb = _reshape(_transpose(b, ax_b + free_b), [k, n]), False
    out = apply1("matmul", [a2, b2], transpose_a=ta, transpose_b=tb)
    return _reshape(out, out_shape)


def dot(a: ArrayLike, b: ArrayLike) -> Var:
    """NumPy ``dot``: scalars multiply, 1-d x 1-d is the inner product, 2-d x 2-d the matrix
    product, N-d x 1-d sums over the last axis, N-d x M-d sums over the last axis of ``a``
    and the second-to-last of ``b``.

    >>> import mnn_expr as F
    >>> F.dot(F.array([1.0, 2.0]), F.array([3.0, 4.0])).item()
    11.0
    """
    a, b = _promote(a, b)
    if a.ndim == 0 or b.ndim == 0:
        return _native.binary("multiply", a, b)
    if b.ndim <= 2:
        return apply1("matmul", [a, b], transpose_a=False, transpose_b=False)
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 2]))


def vdot(a: ArrayLike, b: ArrayLike) -> Var:
    """Dot product of the flattened operands (NumPy ``vdot``; real values, so no conjugation).

    >>> import mnn_expr as F
    >>> F.vdot(F.ones([2, 2]), F.ones([4])).item()
    4.0
    """
    a, b = _promote(a, b)
    if a.size != b.size:
        raise ValueError(f"vdot: operands have different sizes: {a.shape} ({a.size}) and {b.shape} "
                         f"({b.size})")
    a1, b1 = _reshape(a, [a.size]), _reshape(b, [b.size])
    return apply1("matmul", [a1, b1], transpose_a=False, transpose_b=False)


def inner(a: ArrayLike, b: ArrayLike) -> Var:
    """Sum of products over the last axes (NumPy ``inner``); scalars multiply.

    >>> import mnn_expr as F
    >>> F.inner(F.ones([2, 3]), F.ones([4, 3])).shape
    (2, 4)
    """
    a, b = _promote(a, b)
    if a.ndim == 0 or b.ndim == 0:
        return _native.binary("multiply", a, b)
    return tensordot(a, b, axes=([a.ndim - 1], [b.ndim - 1]))


def outer(a: ArrayLike, b: ArrayLike) -> Var:
    """Outer product of the flattened operands: ``out[i, j] = a[i] * b[j]``.

    >>> import mnn_expr as F
    >>> F.outer(F.array([1.0, 2.0]), F.array([1.0, 10.0, 100.0])).tolist()
    [[1.0, 10.0, 100.0], [2.0, 20.0, 200.0]]
    """
    a, b = _promote(a, b)
    return _native.binary("multiply", _reshape(a, [a.size, 1]), _reshape(b, [1, b.size]))


def trace(a: ArrayLike, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Var:
    """Sum along a diagonal of ``a`` (NumPy ``trace``): the diagonal of axes ``axis1``,
    ``axis2``, shifted by ``offset``; the other axes remain.  Integers sum in int64.

    >>> import mnn_expr as F
    >>> F.trace(F.array([[1.0, 2.0], [3.0, 4.0]])).item()
    5.0
    """
    a = asarray(a)
    if a.ndim < 2:
        raise ValueError(f"trace: expected an input of ndim >= 2, got shape {a.shape}")
    i, j = normalize_axis(axis1, a.ndim, "trace"), normalize_axis(axis2, a.ndim, "trace")
    if i == j:
        raise ValueError("trace: axis1 and axis2 must differ")
    mask_shape = [1] * a.ndim
    mask_shape[i], mask_shape[j] = a.shape[i], a.shape[j]
    eye = np.eye(a.shape[i], a.shape[j], k=int(offset), dtype=a.dtype.numpy)
    mask = (eye if i < j else eye.T).reshape(mask_shape)
    if not a.dtype.is_floating:  # NumPy sums integers (and bools) in the platform int
        a = _native.cast(a, "int64")
    prod = _native.binary("multiply", a, asarray(mask, a.dtype))
    return _sum(prod, sorted([i, j]))


# ---- einsum -------------------------------------------------------------------------


def _parse_einsum(subscripts: str, shapes: Sequence[tuple]) -> tuple[list[list[str]], list[str]]:
    """Operand label lists and the output label list; '...' dims get labels '.0', '.1', ..."""
    s = subscripts.replace(" ", "")
    if "->" in s:
        lhs, rhs = s.split("->")
        if "->" in rhs:
            raise ValueError(f"einsum: more than one '->' in {subscripts!r}")
    else:
        lhs, rhs = s, None
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands, got {len(shapes)}")
    ell_nd = 0
    labels: list[list[str]] = []
    for term, shape in zip(terms, shapes):
        if term.count("...") > 1 or "." in term.replace("...", ""):
            raise ValueError(f"einsum: bad ellipsis in {term!r}")
        for c in term.replace("...", ""):
            if not c.isalpha():
                raise ValueError(f"einsum: invalid subscript {c!r} in {subscripts!r}")
        named = len(term.replace("...", ""))
        if "..." in term:
            nd = len(shape) - named
            if nd < 0:
                raise ValueError(f"einsum: operand of shape {shape} has fewer dims than {term!r} names")
            ell_nd = max(ell_nd, nd)
            pre, post = term.split("...")
            labels.append(list(pre) + [f".{ell_nd_i}" for ell_nd_i in range(-nd, 0)] + list(post))
        else:
            if named != len(shape):
                raise ValueError(f"einsum: {term!r} names {named} dims but the operand has shape {shape}")
            labels.append(list(term))
    # Ellipsis labels are right-aligned: '.-1' is the last ellipsis dim.
    ell = [f".{i}" for i in range(-ell_nd, 0)]
    if rhs is None:
        counts: dict[str, int] = {}
        for ls in labels:
            for lab in ls:
                if not lab.startswith("."):
                    counts[lab] = counts.get(lab, 0) + 1
        out = ell + sorted(c for c, n in counts.items() if n == 1)
    else:
        if rhs.count("...") > 1 or "." in rhs.replace("...", ""):
            raise ValueError(f"einsum: bad ellipsis in output {rhs!r}")
        pre, _, post = rhs.partition("...")
        if "..." not in rhs:
            pre, post = rhs, ""
        out = list(pre) + (ell if "..." in rhs else []) + list(post)
        named = [c for c in out if not c.startswith(".")]
        if len(set(named)) != len(named):
            raise ValueError(f"einsum: output subscript repeated in {subscripts!r}")
        present = {lab for ls in labels for lab in ls}
        for c in named:
            if not c.isalpha():
                raise ValueError(f"einsum: invalid subscript {c!r} in {subscripts!r}")
            if c not in present:
                raise ValueError(f"einsum: output subscript {c!r} does not appear in the inputs")
    return labels, out


def _take_diagonals(x: Var, labs: list[str]) -> tuple[Var, list[str]]:
    """Merges repeated labels of one operand (its diagonal), by an identity mask and a sum."""
    while True:
        dup = next((lab for lab in labs if labs.count(lab) > 1), None)
        if dup is None:
            return x, labs
        i = labs.index(dup)
        j = labs.index(dup, i + 1)
        n = x.shape[i]
        if x.shape[j] != n:
            raise ValueError(f"einsum: label {dup!r} has sizes {n} and {x.shape[j]} in one operand")
        mask_shape = [1] * x.ndim
        mask_shape[i] = mask_shape[j] = n
        mask = asarray(np.eye(n, dtype=x.dtype.numpy).reshape(mask_shape), x.dtype)
        x = _sum(_native.binary("multiply", x, mask), [j])
        labs = labs[:j] + labs[j + 1:]


def _contract(a: Var, la: list[str], b: Var, lb: list[str], keep: set) -> tuple[Var, list[str]]:
    """Contracts two operands over their shared labels not in ``keep`` (one batched matmul)."""
    shared = [lab for lab in la if lab in lb]
    batch = [lab for lab in shared if lab in keep]
    summed = [lab for lab in shared if lab not in keep]
    fa = [lab for lab in la if lab not in lb]
    fb = [lab for lab in lb if lab not in la]
    size = {**dict(zip(lb, b.shape)), **dict(zip(la, a.shape))}
    a2 = _transpose(a, [la.index(lab) for lab in batch + fa + summed])
    b2 = _transpose(b, [lb.index(lab) for lab in batch + summed + fb])
    bshape_a = [a.shape[la.index(lab)] for lab in batch]
    bshape_b = [b.shape[lb.index(lab)] for lab in batch]
    m = _prod(size[lab] for lab in fa)
    k = _prod(size[lab] for lab in summed)
    n = _prod(size[lab] for lab in fb)
    a2 = _reshape(a2, bshape_a + [m, k])
    b2 = _reshape(b2, bshape_b + [k, n])
    out = apply1("matmul", [a2, b2], transpose_a=False, transpose_b=False)
    bshape = [max(x, y) if min(x, y) != 0 else 0 for x, y in zip(bshape_a, bshape_b)]
    out = _reshape(out, bshape + [size[lab] for lab in fa] + [size[lab] for lab in fb])
    return out, batch + fa + fb


def einsum(subscripts: str, *operands: ArrayLike) -> Var:
    """Einstein summation (NumPy ``einsum``): explicit (``'ij,jk->ik'``) or implicit
    (``'ij,jk'``) output, ``...`` for broadcast dims, repeated labels for diagonals.

    Operands are contracted left to right, each pair as one batched matmul.

    >>> import mnn_expr as F
    >>> F.einsum("bij,bjk->bik", F.ones([2, 3, 4]), F.ones([2, 4, 5])).shape
    (2, 3, 5)
    >>> F.einsum("ii", F.array([[1.0, 2.0], [3.0, 4.0]])).item()
    5.0
    """
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a str, got {type(subscripts).__name__}")
    if not operands:
        raise ValueError("einsum: expected at least one operand")
    ops = [asarray(o) for o in operands]
    if len(ops) > 1:
        dt = ops[0].dtype
        for o in ops[1:]:
            dt = promote_types(dt, o.dtype)
        ops = [o if o.dtype == dt else _native.cast(o, dt.name) for o in ops]
    labels, out = _parse_einsum(subscripts, [o.shape for o in ops])
    # Sizes: named labels must agree; a size-1 dim broadcasts against a larger one.
    size: dict[str, int] = {}
    for o, ls in zip(ops, labels):
        for lab, d in zip(ls, o.shape):
            prev = size.get(lab)
            if prev is None or prev == 1:
                size[lab] = d
            elif d != prev and d != 1:
                raise ValueError(f"einsum: operands do not broadcast: label {lab!r} has sizes {prev} and {d} "
                                 f"({subscripts!r} with shapes {[tuple(o.shape) for o in ops]})")
    work: list[tuple[Var, list[str]]] = []
    for o, ls in zip(ops, labels):
        o, ls = _take_diagonals(o, list(ls))
        # Drop broadcast (size-1) dims whose label is larger elsewhere.
        drop = [i for i, lab in enumerate(ls) if o.shape[i] == 1 and size[lab] != 1]
        if drop:
            o = _reshape(o, [d for i, d in enumerate(o.shape) if i not in drop])
            ls = [lab for i, lab in enumerate(ls) if i not in drop]
        work.append((o, ls))
    out_set = set(out)

    def needed_later(idx: int) -> set:
        s = set(out_set)
        for _, ls in work[idx:]:
            s.update(ls)
        return s

    # Sum out labels that only one operand has and nobody needs.
    for idx, (o, ls) in enumerate(work):
        others = set(out_set)
        for jdx, (_, ls2) in enumerate(work):
            if jdx != idx:
                others.update(ls2)
        axes = [i for i, lab in enumerate(ls) if lab not in others]
        if axes:
            work[idx] = (_sum(o, axes), [lab for i, lab in enumerate(ls) if i not in axes])
    cur, lc = work[0]
    for idx in range(1, len(work)):
        nxt, ln = work[idx]
        cur, lc = _contract(cur, lc, nxt, ln, needed_later(idx + 1))
    # Labels left that are not in the output (single operand case), then the output order.
    axes = [i for i, lab in enumerate(lc) if lab not in out_set]
    if axes:
        cur = _sum(cur, axes)
        lc = [lab for lab in lc if lab in out_set]
    missing = [lab for lab in out if lab not in lc]
    if missing:  # a label all of whose dims were size-1 broadcasts
        cur = _reshape(cur, list(cur.shape) + [1] * len(missing))
        lc = lc + missing
    return _transpose(cur, [lc.index(lab) for lab in out])


def _dot_method(self: Var, other: ArrayLike) -> Var:
    """``x.dot(y)``: :func:`dot`."""
    return dot(self, other)


attach(__matmul__=_matmul_op, __rmatmul__=_rmatmul_op, matmul=_matmul_op, dot=_dot_method)
