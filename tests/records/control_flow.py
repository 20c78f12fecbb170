"""Records for the control-flow primitives ``if`` and ``loop``: cond / fori_loop / scan traced by
F.compile (which builds them), checked against numpy."""

from __future__ import annotations

import numpy as np

from tests.op_records import OpRecord, shapes


def _cond(F, x):
    return F.compile(lambda v: F.cond(v.sum() > 0, lambda a: F.exp(a) * a, lambda a: F.sin(a) - a, v))(x)


def _cond_ref(x):
    return np.exp(x) * x if x.sum() > 0 else np.sin(x) - x


def _scan(F, x):
    def step(c, row):
        c = c * 0.5 + row
        return c, c.sum()
    carry, ys = F.compile(lambda v: F.scan(step, F.zeros(v.shape[1:], dtype=v.dtype), v))(x)
    return [carry, ys]


def _scan_ref(x):
    c, ys = np.zeros(x.shape[1:], x.dtype), []
    for row in x:
        c = c * x.dtype.type(0.5) + row
        ys.append(c.sum())
    return [c, np.array(ys, dtype=x.dtype)]


def _fori(F, x):
    return F.compile(lambda v: F.fori_loop(1, 4, lambda i, a: a * v + F.cast(i, v.dtype), F.zeros_like(v)))(x)


def _fori_ref(x):
    a = np.zeros_like(x)
    for i in range(1, 4):
        a = a * x + x.dtype.type(i)
    return a


RECORDS = [
    OpRecord("cond (compiled: if)", _cond, _cond_ref, covers=("if",), lazy=False),
    OpRecord("scan (compiled: loop)", _scan, _scan_ref, shapes=shapes(min_dims=1, min_side=1).map(lambda s: (s,)),
             covers=("loop",), lazy=False, rtol=1e-5, atol=1e-5),
    OpRecord("fori_loop (compiled: loop)", _fori, _fori_ref, covers=("loop",), lazy=False, low=-1.5, high=1.5),
]
