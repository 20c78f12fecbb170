"""Tracing a Module or function into a :class:`Graph` of primitives, for export.

:func:`trace` calls the model once with a placeholder per example input, in lazy mode
(as :func:`mnn_expr.compile` does), and walks the recorded history back from the outputs:
every node is a primitive of the op table (``mnn_expr.OP_TABLE``) with its attributes;
values already computed (parameters, buffers, constants) become constants of the graph,
named after the module attribute that holds them.

Dynamic axes: the model is traced a second time with every dynamic dimension changed; the
two traces must have the same structure, and an attribute that differs between them must
be one the runtime can re-infer (a reshape entry becomes -1, a slice end that reaches the
end of its axis becomes "to the end"); anything else raises an error naming the op, since
the exported file could not run at other sizes.

>>> import mnn_expr as F, mnn_nn as nn
>>> g = trace(nn.Linear(3, 2), [F.zeros((4, 3))], dynamic_axes={"input0": [0]})
>>> [n.op for n in g.nodes], g.value(g.inputs[0]).shape
(['matmul', 'add'], (None, 3))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import numpy as np
from mnn_expr._native import Var

import mnn_expr as F
from mnn_expr.control_flow import for_inference
from mnn_expr.executor import _tracing
from mnn_expr.graph_capture import (
    _KIND_PLACEHOLDER,
    SLICE_TO_END,
    Graph,
    Node,
    Value,
    build_graph,
    dynamic_infos,
    merge_dynamic,
)

__all__ = ["Value", "Node", "Graph", "trace", "graph_of", "SLICE_TO_END"]

def _as_inputs(example_inputs: Any) -> list:
    if isinstance(example_inputs, (Var, np.ndarray)):
        example_inputs = [example_inputs]
    return [v if isinstance(v, Var) else F.asarray(v) for v in example_inputs]


def _flatten_outputs(out: Any, names: Optional[Sequence[str]]) -> tuple:
    """The output Vars of (possibly nested) lists/tuples/dicts and their names: dict keys joined
    by '.', positions as ``output<i>`` (``output1.0`` inside a nested tuple)."""
    outs: list = []
    keys: list = []

    def walk(o: Any, key: str) -> None:
        if isinstance(o, Var):
            outs.append(o)
            keys.append(key)
        elif isinstance(o, dict):
            for k, v in o.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(o, (list, tuple)):
            for i, v in enumerate(o):
                walk(v, f"{key}.{i}" if key else f"output{i}")
        else:
            raise TypeError(f"export: output {key or 'output0'!r} is a {type(o).__name__}, not a Var "
                            "(models must return Vars, or lists/tuples/dicts of them)")

    walk(out, "output0" if isinstance(out, Var) else "")
    if names is not None:
        if len(names) != len(outs):
            raise ValueError(f"export: {len(names)} output names given for {len(outs)} outputs")
        keys = list(names)
    return outs, keys


def _module_names(model: Any) -> dict:
    """id of each parameter/buffer Var -> its qualified name (for naming constants)."""
    names: dict = {}
    if hasattr(model, "named_parameters") and hasattr(model, "named_buffers"):
        for name, v in (*model.named_parameters(), *model.named_buffers()):
            if isinstance(v, Var):
                names.setdefault(v._id(), name)
    return names


def _trace_once(fn: Callable, infos: list, input_names: list, output_names: Optional[Sequence[str]],
                const_names: dict) -> Graph:
    phs = [F.placeholder(shape, dtype, name=name) for (shape, dtype), name in zip(infos, input_names)]
    held = [ph._alias() for ph in phs]  # the model may rebind its arguments (x[i] = v updates x's handle)
    with _tracing(), F.lazy_eval(True):
        out = fn(*phs)
    outs, out_keys = _flatten_outputs(out, output_names)
    return build_graph(outs, out_keys, held, input_names, const_names)


def graph_of(outputs: Sequence[Var], names: Optional[Sequence[str]] = None) -> Graph:
    """The graph that computes ``outputs`` from the placeholders it reads (MNN's ``save(vars, ...)``):
    every unwritten placeholder in their history becomes an input (named after it), computed values
    become constants.

    >>> import mnn_expr as F
    >>> x = F.placeholder([2], name="x")
    >>> g = graph_of([F.exp(x)], ["y"])
    >>> [g.value(i).name for i in g.inputs], [n.op for n in g.nodes]
    (['x'], ['exp'])
    """
    outs = list(outputs)
    names = list(names) if names is not None else [v.name or f"output{i}" for i, v in enumerate(outs)]
    phs, seen, stack = [], set(), list(outs)
    while stack:  # placeholders in the history, in first-seen order
        v = stack.pop()
        if v._id() in seen:
            continue
        seen.add(v._id())
        if v._kind == _KIND_PLACEHOLDER and not v._computed:
            phs.append(v)
        elif not v._computed and v._has_history:
            stack.extend(reversed(v._inputs))
    in_names = [p.name or f"input{i}" for i, p in enumerate(phs)]
    return build_graph(outs, names, phs, in_names, {})


def trace(model: Union[Callable, Any], example_inputs: Any, *, input_names: Optional[Sequence[str]] = None,
          output_names: Optional[Sequence[str]] = None,
          dynamic_axes: Optional[dict] = None) -> Graph:
    """Traces ``model`` (a Module or a function of Vars) on ``example_inputs`` into a :class:`Graph`.

    ``dynamic_axes``: ``{input_name: [axis, ...]}`` (or ``{axis: label}``) for dimensions that may
    change size when the exported model runs.

    >>> import mnn_expr as F
    >>> g = trace(lambda x: F.relu(x) * 2, [F.ones((2, 2))], output_names=["y"])
    >>> [n.op for n in g.nodes], g.value(g.outputs[0]).name
    (['relu', 'multiply'], 'y')
    """
    inputs = _as_inputs(example_inputs)
    names = list(input_names) if input_names is not None else [f"input{i}" for i in range(len(inputs))]
    if len(names) != len(inputs):
        raise ValueError(f"export: {len(names)} input names given for {len(inputs)} inputs")
    infos = [(tuple(v.shape), v.dtype.name) for v in inputs]
    dynamic = [set() for _ in inputs]
    for key, axes in (dynamic_axes or {}).items():
        if key not in names:
            raise ValueError(f"export: dynamic_axes names {key!r}, which is not an input ({names})")
        k = names.index(key)
        for a in axes:
            nd = len(infos[k][0])
            if not -nd <= int(a) < nd:
                raise ValueError(f"export: dynamic axis {a} of input {key!r} is out of range for its {nd}-d shape")
            dynamic[k].add(int(a) % nd)
    const_names = _module_names(model)
    with for_inference():  # no gradient is taken of an export: control flow stays if/loop ops
        g = _trace_once(model, infos, names, output_names, const_names)
        if any(dynamic):
            g2 = _trace_once(model, dynamic_infos(infos, dynamic), names, output_names, const_names)
            merge_dynamic(g, g2)
    return g
