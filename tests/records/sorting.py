"""Records for sorting: sort, argsort, msort, topk (ties and NaN included).

Ascending order is NumPy's stable sort (NaN last); descending order is a
stable sort of the negated values with NaN first (PyTorch's convention).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tests.op_records import ALL, FLOATS, HALFS, OpRecord, shapes
from tests.records.reduce import _axis, _ties, _with_nan


def _order(x, axis, descending):
    """Stable sorting permutation of ``x`` along ``axis`` (``None``: flattened)."""
    if axis is None:
        x, axis = x.reshape(-1), 0
    if not descending:
        return x, np.argsort(x, axis=axis, kind="stable"), axis
    if x.dtype.kind == "f":
        xf = x.astype(np.float64)
        nan = np.isnan(xf)
        # primary key: NaN first; secondary: larger first (lexsort is stable; its last key is primary)
        order = np.lexsort((np.where(nan, 0.0, -xf), ~nan), axis=axis)
    else:
        order = np.argsort(-x.astype(np.int64), axis=axis, kind="stable")
    return x, order, axis


def _sort_ref(x, axis=-1, descending=False):
    x, order, axis = _order(x, axis, descending)
    return np.take_along_axis(x, order, axis=axis)


def _argsort_ref(x, axis=-1, descending=False):
    return _order(x, axis, descending)[1]


def _topk_ref(x, k, axis=-1, largest=True):
    x, order, axis = _order(x, axis, largest)
    first = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, first, axis=axis), first]


def _sort_params(shp):
    return st.fixed_dictionaries({"axis": _axis(shp[0], single=True), "descending": st.booleans()})


@st.composite
def _topk_params(draw, shp):
    shape = shp[0]
    nd = len(shape)
    axis = draw(st.integers(-nd, nd - 1))
    return {"k": draw(st.integers(0, shape[axis])), "axis": axis, "largest": draw(st.booleans())}


_ND = st.tuples(shapes(min_dims=1))

RECORDS = [
    OpRecord(
        "sort",
        lambda F, x, **p: F.sort(x, **p),
        _sort_ref,
        dtypes=ALL,
        params=_sort_params,
        values=_ties,
        covers=("sort", "reshape"),
    ),
    OpRecord(
        "sort_nan",
        lambda F, x, **p: F.sort(x, **p),
        _sort_ref,
        dtypes=FLOATS + HALFS,
        params=_sort_params,
        values=_with_nan,
        covers=("sort",),
    ),
    OpRecord(
        "argsort",
        lambda F, x, **p: F.argsort(x, **p),
        _argsort_ref,
        dtypes=ALL,
        params=_sort_params,
        values=_ties,
        covers=("sort",),
    ),
    OpRecord(
        "argsort_nan",
        lambda F, x, **p: x.argsort(**p),
        _argsort_ref,
        dtypes=FLOATS,
        params=_sort_params,
        values=_with_nan,
        covers=("sort",),
    ),
    OpRecord(
        "sort_mnn_positional",
        lambda F, x, axis, descending: F.sort(x, axis, True, descending),
        _argsort_ref,
        dtypes=FLOATS + ("int32",),
        shapes=_ND,
        params=_sort_params,
        values=_ties,
        covers=("sort",),
    ),
    OpRecord(
        "sort_mnn_keywords",
        lambda F, x, axis, descending: F.sort(x, axis=axis, descend=descending),
        _sort_ref,
        dtypes=FLOATS,
        shapes=_ND,
        params=_sort_params,
        values=_ties,
        covers=("sort",),
    ),
    OpRecord(
        "msort",
        lambda F, x: F.msort(x),
        lambda x: np.sort(x, axis=0, kind="stable"),
        dtypes=ALL,
        shapes=_ND,
        values=_ties,
        covers=("sort",),
    ),
    OpRecord(
        "topk",
        lambda F, x, **p: F.topk(x, **p),
        _topk_ref,
        dtypes=ALL,
        shapes=_ND,
        params=_topk_params,
        values=_ties,
        covers=("topk",),
    ),
    OpRecord(
        "topk_nan",
        lambda F, x, **p: F.topk(x, **p),
        _topk_ref,
        dtypes=FLOATS + HALFS,
        shapes=_ND,
        params=_topk_params,
        values=_with_nan,
        covers=("topk",),
    ),
]
