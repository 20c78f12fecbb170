"""Graph capture: the recorded history of Vars as a :class:`Graph` of op-table primitives.

The shared core of export (``mnn_nn.deploy``) and of control flow's graph bodies
(``If``/``Loop`` attributes, see :mod:`mnn_expr.control_flow`): :func:`build_graph` walks
back from output Vars to given input Vars, turning computed values into constants;
:func:`to_subgraph` makes a native body (``_native.SubGraph``) of a graph;
:func:`capture_body` traces a Python function into a body, turning the outer values it
reads into extra inputs (closure conversion).

>>> import mnn_expr as F
>>> x = F.placeholder([2], name="x")
>>> g = build_graph([F.exp(x) * 2], ["y"], [x], ["x"])
>>> [n.op for n in g.nodes], g.value(g.outputs[0]).name
(['exp', 'multiply'], 'y')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from . import _native
from ._native import Var

__all__ = ["Value", "Node", "Graph", "build_graph", "to_subgraph", "Body", "capture_body", "merge_dynamic",
           "dynamic_infos", "grown", "SLICE_TO_END"]

_KIND_PLACEHOLDER = 1
SLICE_TO_END = 2**62  # a slice end past any axis (the slice rule clamps it to the axis length)


@dataclass
class Value:
    """A tensor of the graph: its name, dtype and shape (None marks a dynamic dimension)."""

    name: str
    dtype: str
    shape: tuple


@dataclass
class Node:
    """One primitive: its op-table name, attributes (schema names -> values), input and
    output value indices."""

    op: str
    attrs: dict
    inputs: list
    outputs: list


@dataclass
class Graph:
    """A traced program: values, nodes in execution order, which values are the inputs,
    the outputs and constants (index -> numpy array).  ``states`` maps a state value (a
    constant the program updates, e.g. a weight in an exported training step) to the output
    that holds its new value."""

    values: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    constants: dict = field(default_factory=dict)
    states: dict = field(default_factory=dict)

    def value(self, i: int) -> Value:
        return self.values[i]

    def add_value(self, name: str, dtype: str, shape: Sequence) -> int:
        self.values.append(Value(name, dtype, tuple(shape)))
        return len(self.values) - 1


def build_graph(outs: list, out_keys: list, inputs: list, input_names: list,
                const_names: Optional[dict] = None) -> Graph:
    """The graph computing ``outs`` (named ``out_keys``) from the Vars ``inputs``: walks the
    recorded history back from the outputs; computed values become constants (named from
    ``const_names``: Var id -> name, else their own name); any other leaf is an error."""
    const_names = const_names or {}
    g = Graph()
    index: dict = {}  # Var id -> value index
    node_outputs: dict = {}  # node id -> list of value indices (one per output)
    for ph, name in zip(inputs, input_names):
        index[ph._id()] = g.add_value(name, ph.dtype.name, ph.shape)
        g.inputs.append(index[ph._id()])

    def visit(root: Var) -> None:
        stack = [(root, False)]
        while stack:
            v, expanded = stack.pop()
            if v._id() in index:
                continue
            if v._computed and not v._from_placeholder:  # parameters, buffers, constants (not a cached result)
                i = g.add_value(const_names.get(v._id()) or v.name or f"const{len(g.constants)}", v.dtype.name, v.shape)
                g.constants[i] = np.array(v._numpy())
                index[v._id()] = i
                continue
            if not v._has_history:
                what = "a placeholder not in the inputs" if v._kind == _KIND_PLACEHOLDER else "an unknown value"
                raise ValueError(f"export: the model reads {what} ({v.name or 'unnamed'}, "
                                 f"{v.dtype.name}{list(v.shape)}); pass it as an input")
            inputs = v._inputs
            if not expanded:
                stack.append((v, True))
                stack.extend((x, False) for x in reversed(inputs) if x._id() not in index)
                continue
            nid = v._node_id
            if nid not in node_outputs:
                op, attrs = v._op, v._attrs
                infos_out = _native.infer(op, [(x.dtype.name, list(x.shape)) for x in inputs], attrs)
                outs_idx = [g.add_value(f"{op}_{len(g.nodes)}" + (f":{k}" if len(infos_out) > 1 else ""), dt, sh)
                            for k, (dt, sh) in enumerate(infos_out)]
                g.nodes.append(Node(op, attrs, [index[x._id()] for x in inputs], outs_idx))
                node_outputs[nid] = outs_idx
            index[v._id()] = node_outputs[nid][v._output_index]

    for v in outs:
        visit(v)
    for v, key in zip(outs, out_keys):
        i = index[v._id()]
        if i in g.inputs or i in g.constants or i in g.outputs:  # outputs get values of their own
            src, i = i, g.add_value(key, v.dtype.name, v.shape)
            g.nodes.append(Node("reshape", {"shape": list(v.shape)}, [src], [i]))
        g.values[i].name = key
        g.outputs.append(i)
    return g


def to_subgraph(g: Graph) -> Any:
    """The native body (``_native.SubGraph``) of a graph without states."""
    from .creation import array
    values = [(v.name, v.dtype, [-1 if d is None else int(d) for d in v.shape]) for v in g.values]
    constants = [(i, array(np.require(a, requirements="C"), dtype=g.values[i].dtype)) for i, a in g.constants.items()]
    nodes = [(n.op, dict(n.attrs), list(n.inputs), list(n.outputs)) for n in g.nodes]
    return _native.subgraph(values, list(g.inputs), list(g.outputs), constants, nodes)


# ---- dynamic dims: two traces at different sizes merged into one graph -----------------------------

def grown(shape: Sequence, axes: Any) -> tuple:
    """``shape`` with every dimension in ``axes`` changed, for a second trace (d -> d + 2: avoids 1,
    which broadcasts)."""
    return tuple(d + 2 if k in axes else d for k, d in enumerate(shape))


def dynamic_infos(infos: list, dynamic: list) -> list:
    """The input infos with every dynamic dimension changed (see :func:`grown`)."""
    return [(grown(shape, dyn), dt) for (shape, dt), dyn in zip(infos, dynamic)]


def _graph_of_body(body: Any) -> Graph:
    """A control-flow body (``_native.SubGraph``) as a :class:`Graph`."""
    d = body.describe()
    g = Graph()
    g.values = [Value(n, dt, tuple(None if s < 0 else s for s in shape)) for n, dt, shape in d["values"]]
    g.nodes = [Node(op, dict(attrs), list(ins), list(outs)) for op, attrs, ins, outs in d["nodes"]]
    g.inputs, g.outputs = list(d["inputs"]), list(d["outputs"])
    g.constants = {i: np.array(v.numpy()) for i, v in d["constants"]}
    return g


def _merge_bodies(a: Any, b: Any, what: str) -> Any:
    ga, gb = _graph_of_body(a), _graph_of_body(b)
    merge_dynamic(ga, gb, what)
    return to_subgraph(ga)


def merge_dynamic(g: Graph, g2: Graph, what: str = "export") -> None:
    """Marks the dims that differ between two traces as dynamic and generalises the attributes
    that differ (or raises)."""
    if [n.op for n in g.nodes] != [n.op for n in g2.nodes] or \
            [(n.inputs, n.outputs) for n in g.nodes] != [(n.inputs, n.outputs) for n in g2.nodes]:
        raise ValueError(f"{what}: the function builds a different graph when a dynamic axis changes size; "
                         "use static shapes")
    for n, n2 in zip(g.nodes, g2.nodes):
        for key, val in n.attrs.items():
            val2 = n2.attrs[key]
            if isinstance(val, _native.SubGraph) and isinstance(val2, _native.SubGraph):
                n.attrs[key] = _merge_bodies(val, val2, what)  # a control-flow body: merged the same way
                continue
            if val == val2:
                continue
            if n.op == "reshape" and key == "shape":
                val, val2 = g.values[n.outputs[0]].shape, g2.values[n2.outputs[0]].shape  # -1 resolved
                if sum(a != b for a, b in zip(val, val2)) == 1:
                    n.attrs[key] = [-1 if a != b else a for a, b in zip(val, val2)]
                    continue
            if n.op == "slice" and key in ("begins", "ends"):
                # A bound that moves with the axis size is relative to the axis end: to the end
                # itself, or a fixed offset before it (x[-2:], x[:-1]).
                shape, shape2 = g.values[n.inputs[0]].shape, g2.values[n2.inputs[0]].shape
                out = []
                for k, (a, b) in enumerate(zip(val, val2)):
                    if a == b:
                        out.append(a)
                    elif a >= shape[k] and b >= shape2[k]:
                        out.append(SLICE_TO_END)
                    elif a - shape[k] == b - shape2[k] and a < shape[k]:
                        out.append(a - shape[k])
                    else:
                        out.append(None)
                if None not in out:
                    n.attrs[key] = out
                    continue
            raise ValueError(f"{what}: attribute {key!r} of op {n.op!r} depends on a dynamic axis ({val} vs {val2}); "
                             "the graph could not run at other sizes. Use static shapes.")
    for i, (v, v2) in enumerate(zip(g.values, g2.values)):
        if i in g.constants and (v.shape != v2.shape or not np.array_equal(g.constants[i], g2.constants[i])):
            raise ValueError(f"{what}: constant {v.name!r} depends on a dynamic axis ({v.dtype}{list(v.shape)}); "
                             "compute it from the inputs instead")
        v.shape = tuple(None if a != b else a for a, b in zip(v.shape, v2.shape))


@dataclass
class Body:
    """A traced function: placeholders for its arguments, its output leaves and their
    structure, and the outer values it reads (``captures``: they become extra inputs)."""

    params: list
    outputs: list
    out_spec: Any
    captures: list

    def subgraph(self, captures: Optional[list] = None) -> Any:
        """The native body with inputs (params..., captures...); ``captures`` may list more
        outer values than this body reads (two branches share one input list)."""
        caps = self.captures if captures is None else captures
        names = [f"arg{i}" for i in range(len(self.params))] + [f"capture{i}" for i in range(len(caps))]
        keys = [f"out{i}" for i in range(len(self.outputs))]
        return to_subgraph(build_graph(self.outputs, keys, list(self.params) + list(caps), names))


def capture_body(fn: Callable, params: list, call: Callable[[list], Any]) -> Body:
    """Traces ``call(params)`` (which calls ``fn``) lazily, with ``params`` (placeholders) standing for
    the arguments; the outer values the result depends on that are not computed constants and not
    computed from ``params`` become captures, in first-seen order."""
    from .compile import _flatten
    from .executor import _tracing, lazy_eval

    with _tracing(), lazy_eval(True):
        out = call(params)
    outs: list = []
    spec = _flatten(out, outs, "control flow: results")
    inner = {p._id() for p in params}
    memo: dict = {}  # Var id -> depends on params

    def depends(root: Var) -> bool:
        stack = [(root, False)]
        while stack:
            v, done = stack.pop()
            if v._id() in memo:
                continue
            if v._id() in inner:
                memo[v._id()] = True
                continue
            if (v._computed and not v._from_placeholder) or not v._has_history:
                memo[v._id()] = False
                continue
            ins = v._inputs
            if not done:
                stack.append((v, True))
                stack.extend((x, False) for x in ins if x._id() not in memo)
            else:
                memo[v._id()] = any(memo[x._id()] for x in ins)
        return memo[root._id()]

    captures: list = []
    seen: set = set()
    stack = list(outs)
    while stack:
        v = stack.pop()
        if v._id() in seen or v._id() in inner:
            continue
        seen.add(v._id())
        if v._computed and not v._from_placeholder:
            continue  # a constant of the body
        if not depends(v):
            captures.append(v)  # an outer value (or loop-invariant work): an input of the body
            continue
        stack.extend(v._inputs)
    return Body(list(params), outs, spec, captures)
