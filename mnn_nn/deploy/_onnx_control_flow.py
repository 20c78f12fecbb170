"""ONNX mappings of the control-flow primitives ``if`` and ``loop`` (see ``ONNX_OPS`` in
:mod:`mnn_nn.deploy.onnx_export`).

``if(cond, operands...)`` becomes ``If``.  ONNX branches have no inputs and read outer values by name,
so the inputs of each branch body are bound to the names of the operands.

``loop(cond0, carried...)`` becomes ``Loop`` with ``M`` = ``trip_count`` (absent for -1): our body
``(i, carried...) -> (cond, carried..., per_iteration...)`` is ONNX's
``(iteration_num, cond_in, carried...) -> (cond_out, carried..., scan_outputs...)`` (``cond_in`` unused),
and both stack the per-iteration outputs along a new first axis.  A carried value that the body passes
through unchanged (the outer values a body reads ride along as those) is read from the outer scope
instead of being carried, and its result is the outer value itself.

Bodies nest (an ``if`` inside a ``loop`` body): a body is mapped through the same table.  Value names
are prefixed by the op's result and the branch (``loop_3/body/if_2/then/out0``) and unique model-wide;
body constants become initializers of the main graph.

>>> import mnn_expr as F
>>> from mnn_nn.deploy.onnx_export import export_onnx
>>> m = export_onnx(lambda x: F.fori_loop(0, 3, lambda i, s: s * 2.0, x), [F.ones((2,))])
>>> [n.op_type for n in m.graph.node], [n.op_type for n in m.graph.node[0].attribute[0].g.node]
(['Loop'], ['Mul', 'Identity'])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._onnx_emit import Ctx
from .graph import Graph, Node


def body_graph(sub: Any, prefix: str) -> Graph:
    """A control-flow body (``_native.SubGraph``) as a :class:`Graph`, its value names prefixed by ``prefix/``
    (dims stored as -1 become dynamic)."""
    d = sub.describe()
    g = Graph()
    for name, dt, shape in d["values"]:
        g.add_value(f"{prefix}/{name}", dt, tuple(None if int(s) < 0 else int(s) for s in shape))
    g.inputs = [int(i) for i in d["inputs"]]
    g.outputs = [int(i) for i in d["outputs"]]
    g.constants = {int(i): np.array(v._numpy()) for i, v in d["constants"]}
    g.nodes = [Node(op, dict(attrs), list(ins), list(outs)) for op, attrs, ins, outs in d["nodes"]]
    return g


def prune(g: Graph) -> None:
    """Drops the nodes (and constants) that no output of ``g`` needs; an output that is a reshape keeping the
    shape (the trace gives an output that is an input or a constant a value of its own) becomes its source,
    which the body then copies out with an Identity."""
    g.outputs = [_source(g, o) for o in g.outputs]
    needed = set(g.outputs)
    kept = []
    for n in reversed(g.nodes):
        if any(o in needed for o in n.outputs):
            kept.append(n)
            needed.update(n.inputs)
    g.nodes = kept[::-1]
    g.constants = {i: a for i, a in g.constants.items() if i in needed}


def _source(g: Graph, vi: int) -> int:
    """``vi`` with the reshapes that keep its (static) shape looked through."""
    producer = {o: n for n in g.nodes for o in n.outputs}
    while vi in producer and producer[vi].op == "reshape":
        src = producer[vi].inputs[0]
        if g.values[src].shape != g.values[vi].shape or None in g.values[vi].shape:
            break
        vi = src
    return vi


def _as_condition(g: Graph, vi: int) -> int:
    """Value ``vi`` of ``g`` as a 0-d bool (ONNX's conditions), a cast and a reshape added where needed."""
    v = g.values[vi]
    if v.dtype != "bool":
        src, vi = vi, g.add_value(f"{v.name}_bool", "bool", v.shape)
        g.nodes.append(Node("cast", {"dtype": "bool"}, [src], [vi]))
    if tuple(v.shape) != ():
        src, vi = vi, g.add_value(f"{v.name}_scalar", "bool", ())
        g.nodes.append(Node("reshape", {"shape": []}, [src], [vi]))
    return vi


def _condition(c: Ctx) -> str:
    """The node's first input (a one-element condition) as a 0-d bool."""
    e, x, v = c.e, c.x[0], c.vin[0]
    x = e.cast(x, v.dtype, "bool")
    return x if tuple(v.shape) == () else e.emit("Reshape", [x, e.const(np.zeros(0, np.int64))])


def _outs(o: Any) -> list:
    return o if isinstance(o, list) else [o]


def _if(c: Ctx) -> list:
    e = c.e
    if not c.vout:
        return []
    prefix = c.vout[0].name
    branches = {}
    for key, tag in (("then_graph", "then"), ("else_graph", "else")):
        g = body_graph(c.attrs[key], f"{prefix}/{tag}")
        prune(g)
        branches[f"{tag}_branch"] = e.subgraph(g, dict(zip(g.inputs, c.x[1:])), f"{prefix}/{tag}")
    return _outs(e.emit("If", [_condition(c)], n_out=len(c.vout), **branches))


def _loop(c: Ctx) -> list:
    e = c.e
    n = len(c.x) - 1
    prefix = c.vout[0].name if c.vout else "loop"
    g = body_graph(c.attrs["body"], f"{prefix}/body")
    n_scan = len(g.outputs) - 1 - n
    through = [k for k in range(n) if _source(g, g.outputs[1 + k]) == g.inputs[1 + k]]
    kept = [k for k in range(n) if k not in through]
    cond_out = _as_condition(g, g.outputs[0])
    cond_in = g.add_value(f"{prefix}/body/cond_in", "bool", ())
    g.outputs = [cond_out] + [g.outputs[1 + k] for k in kept] + g.outputs[1 + n:]
    bound = {g.inputs[1 + k]: c.x[1 + k] for k in through}
    g.inputs = [g.inputs[0], cond_in] + [g.inputs[1 + k] for k in kept]
    results = list(c.x[1:])  # the carried values passed through are the outer ones
    if not kept and not n_scan:
        return results
    prune(g)
    trip = int(c.attrs.get("trip_count", -1))
    body = e.subgraph(g, bound, f"{prefix}/body")
    outs = _outs(e.emit("Loop", [e.const(trip) if trip >= 0 else "", _condition(c), *[c.x[1 + k] for k in kept]],
                        n_out=len(kept) + n_scan, body=body))
    for k, o in zip(kept, outs):
        results[k] = o
    return results + outs[len(kept):]
