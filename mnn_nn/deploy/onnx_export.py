"""ONNX export: a traced :class:`~mnn_nn.deploy.graph.Graph` written as an ONNX model.

:func:`export_onnx` traces a Module or function with :func:`~mnn_nn.deploy.graph.trace`
and maps every primitive of the graph to ONNX nodes through one table, :data:`ONNX_OPS`
(primitive name -> function emitting nodes; the functions live in ``_onnx_elementwise`` and
``_onnx_structural``).  Primitives with a direct ONNX operator become that operator; the others
are composed from standard operators with the semantics of our kernels (NumPy's
``floor_divide``/``mod`` for ints and floats, an accurate ``expm1``/``log1p``, ...).  Constants
become initializers named after the module parameters they hold; dynamic dimensions become
``dim_param`` names.  The model is checked with ``onnx.checker.check_model(model, full_check=True)``
before it is returned.

Opset 17 is the default (17 up to the installed ``onnx``'s newest are accepted); newer opsets use
the operators they add (``Gelu`` from 20, axes inputs of every reduction and the bitwise operators
from 18).

Control flow (``cond``, ``while_loop``, ``fori_loop``, ``scan``) is traced into our ``if``/``loop``
primitives and written as ONNX ``If``/``Loop`` nodes with their bodies as sub-graphs (see
``_onnx_control_flow``); a Module's parameters are traced as not requiring gradients, so control flow
that reads them is not lowered.  ``lower_control_flow=True`` traces with control flow lowered instead
(``where`` selects, loops unroll; ``while_loop`` then cannot export) for consumers without sub-graphs.

>>> import mnn_expr as F, mnn_nn as nn
>>> m = export_onnx(nn.Linear(3, 2), [F.zeros((4, 3))], dynamic_axes={"input0": [0]})
>>> [n.op_type for n in m.graph.node], m.graph.input[0].type.tensor_type.shape.dim[0].dim_param
(['Transpose', 'MatMul', 'Add'], 'input0_dim0')
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import numpy as np

from mnn_expr.control_flow import lowered

from . import _onnx_control_flow as cf
from . import _onnx_elementwise as ew
from . import _onnx_structural as st
from ._onnx_emit import MIN_OPSET, Emitter, onnx_module, value_info
from .graph import Graph, trace

__all__ = ["export_onnx", "graph_to_onnx", "ONNX_OPS"]


# --------------------------------------------------------------------------- the table

_GRAD = "a gradient primitive of training graphs; ONNX export covers inference graphs"
_RANDOM = ("random draws are not exported (ONNX's Random* ops would not reproduce our counter-based stream); "
           "pass the random values as an input")
_D = ew._direct

ONNX_OPS: dict = {
    # unary
    "negative": ew._negative, "abs": _D("Abs"), "sign": ew._sign, "floor": ew._float_or_identity("Floor"),
    "ceil": ew._float_or_identity("Ceil"), "round": ew._float_or_identity("Round"),  # both: half to even
    "trunc": ew._trunc, "sqrt": _D("Sqrt"), "rsqrt": ew._rsqrt, "cbrt": ew._cbrt, "square": ew._square,
    "reciprocal": _D("Reciprocal"), "exp": _D("Exp"), "exp2": ew._exp2, "expm1": ew._expm1, "log": _D("Log"),
    "log2": ew._scaled_log(1.0 / math.log(2.0)), "log10": ew._scaled_log(1.0 / math.log(10.0)),
    "log1p": ew._log1p, "sin": _D("Sin"), "cos": _D("Cos"), "tan": _D("Tan"), "arcsin": _D("Asin"),
    "arccos": _D("Acos"), "arctan": _D("Atan"), "sinh": _D("Sinh"), "cosh": _D("Cosh"), "tanh": _D("Tanh"),
    "arcsinh": _D("Asinh"), "arccosh": _D("Acosh"), "arctanh": _D("Atanh"), "erf": _D("Erf"), "erfc": ew._erfc,
    "erfinv": ew._erfinv, "sigmoid": _D("Sigmoid"), "relu": ew._relu, "gelu": ew._gelu, "gelu_tanh": ew._gelu_tanh,
    "silu": ew._silu, "softplus": ew._softplus, "softsign": _D("Softsign"), "logical_not": ew._logical_not,
    "bitwise_not": ew._bitwise_not, "isnan": ew._isnan, "isinf": ew._isinf, "isfinite": ew._isfinite,
    # binary
    "add": ew._arith("Add", "Or"), "subtract": ew._arith("Sub"), "multiply": ew._arith("Mul", "And"),
    "divide": ew._arith("Div"), "floor_divide": ew._floor_divide, "mod": ew._mod, "fmod": ew._fmod,
    "power": ew._power, "maximum": ew._minmax("Max", "Or"), "minimum": ew._minmax("Min", "And"),
    "arctan2": ew._arctan2, "hypot": ew._hypot, "copysign": ew._copysign, "squared_difference": ew._squared_difference,
    "equal": ew._compare("Equal"), "not_equal": ew._compare("Equal", negate=True), "less": ew._compare("Less"),
    "less_equal": ew._compare("LessOrEqual"), "greater": ew._compare("Greater"),
    "greater_equal": ew._compare("GreaterOrEqual"), "logical_and": ew._logical("And"),
    "logical_or": ew._logical("Or"), "logical_xor": ew._logical("Xor"), "bitwise_and": ew._bitwise("BitwiseAnd", "And"),
    "bitwise_or": ew._bitwise("BitwiseOr", "Or"), "bitwise_xor": ew._bitwise("BitwiseXor", "Xor"),
    "left_shift": ew._shift(True), "right_shift": ew._shift(False),
    # other elementwise
    "where": ew._where, "cast": ew._cast,
    # reductions and scans
    "reduce_sum": ew._reduction("ReduceSum"), "reduce_mean": ew._reduction("ReduceMean"),
    "reduce_prod": ew._reduction("ReduceProd"), "reduce_max": ew._reduction("ReduceMax"),
    "reduce_min": ew._reduction("ReduceMin"), "reduce_any": ew._any_all("ReduceMax"),
    "reduce_all": ew._any_all("ReduceMin"), "argmax": ew._arg("ArgMax"), "argmin": ew._arg("ArgMin"),
    "cumsum": ew._cumsum, "cumprod": ew._cumprod,
    # movement
    "reshape": st._reshape, "transpose": st._transpose, "slice": st._slice, "broadcast_to": st._broadcast_to,
    "broadcast_like": st._broadcast_like,
    "concat": st._concat, "pad": st._pad, "tile": st._tile, "flip": st._flip, "raster": st._raster,
    # indexing
    "gather": st._gather, "gather_nd": st._gather_nd, "take_along_axis": st._take_along_axis,
    "scatter_nd": st._scatter_nd, "put_along_axis": st._put_along_axis,
    # sorting
    "sort": st._sort, "topk": st._topk_op,
    # linear algebra, convolution, pooling, normalisation
    "matmul": st._matmul, "conv2d": st._conv2d, "conv2d_transpose": st._conv2d_transpose,
    "max_pool2d": st._max_pool2d, "avg_pool2d": st._avg_pool2d, "softmax": st._softmax("Softmax"),
    "log_softmax": st._softmax("LogSoftmax"), "layer_norm": st._layer_norm,
    # refused, with the reason
    "conv2d_backprop_filter": st._refuse(_GRAD), "max_pool2d_grad": st._refuse(_GRAD),
    "random_uniform": st._refuse(_RANDOM), "random_normal": st._refuse(_RANDOM),
    # control flow: sub-graphs
    "if": cf._if, "loop": cf._loop,
}


# --------------------------------------------------------------------------- graph -> model


def _propagate(g: Graph, example_shapes: list, dyn: list, offsets: list) -> Optional[list]:
    """Output shapes at the example sizes and at two other sizes of the dynamic dims (dim ``dyn[i]`` grows
    by ``offsets[i]`` times 1 and 2), by the native shape rules; None when a rule refuses."""
    from mnn_expr import _native

    runs = []
    for t in range(3):
        shapes: dict = {ci: list(g.values[ci].shape) for ci in g.constants}
        for k, vi in enumerate(g.inputs):
            shapes[vi] = list(example_shapes[k])
        for (k, a), off in zip(dyn, offsets):
            shapes[g.inputs[k]][a] += t * off
        try:
            for n in g.nodes:
                ins = [(g.values[i].dtype, shapes[i]) for i in n.inputs]
                for i, (_, s) in zip(n.outputs, _native.infer(n.op, ins, n.attrs)):
                    shapes[i] = list(s)
        except (ValueError, TypeError, IndexError):
            return None
        runs.append(shapes)
    return runs


def _dim_labels(g: Graph, dynamic_axes: Optional[dict], example_shapes: list) -> tuple:
    """dim_param names for the inputs' dynamic dims and for the outputs' dynamic dims.

    An input dim is named by its label in ``dynamic_axes`` or ``"<input>_dim<axis>"``.  An output dim
    takes the name of the input dim it follows, found by propagating shapes with the dynamic dims changed:
    first each on its own; when the model needs some of them equal (a batch shared by two inputs), dims of
    equal example size change together, and then share one name.  Otherwise an output dim gets a name of
    its own.
    """
    in_labels: list = []
    for vi in g.inputs:
        v = g.values[vi]
        spec = (dynamic_axes or {}).get(v.name, {})
        labels = {}
        for a, d in enumerate(v.shape):
            if d is None:
                named = spec.get(a, spec.get(a - len(v.shape))) if isinstance(spec, dict) else None
                labels[a] = str(named) if named is not None else f"{v.name}_dim{a}"
        in_labels.append(labels)
    user = {(k, a) for k, vi in enumerate(g.inputs) for a in in_labels[k]
            if isinstance((dynamic_axes or {}).get(g.values[vi].name), dict)}

    dyn = [(k, a) for k, labels in enumerate(in_labels) for a in labels]
    runs = _propagate(g, example_shapes, dyn, [7 + 11 * i for i in range(len(dyn))])
    if runs is None and dyn:
        sizes = sorted({example_shapes[k][a] for k, a in dyn})
        runs = _propagate(g, example_shapes, dyn, [7 + 11 * sizes.index(example_shapes[k][a]) for k, a in dyn])
        if runs is not None:  # dims of one size are one dim: one name (a user's label first)
            for size in sizes:
                group = [(k, a) for k, a in dyn if example_shapes[k][a] == size]
                named = [in_labels[k][a] for k, a in group if (k, a) in user]
                for k, a in group:
                    if (k, a) not in user:
                        in_labels[k][a] = named[0] if named else in_labels[group[0][0]][group[0][1]]

    out_labels: list = []
    for vi in g.outputs:
        v = g.values[vi]
        labels = {}
        for a, d in enumerate(v.shape):
            if d is not None:
                continue
            labels[a] = f"{v.name}_dim{a}"
            for k, ia in dyn:
                if runs is not None and all(run[vi][a] == run[g.inputs[k]][ia] for run in runs):
                    labels[a] = in_labels[k][ia]
                    break
        spec = (dynamic_axes or {}).get(v.name)
        if isinstance(spec, dict):  # the user's names for output dims (those the trace found dynamic)
            for a, label in spec.items():
                if int(a) % max(len(v.shape), 1) in labels:
                    labels[int(a) % len(v.shape)] = str(label)
        out_labels.append(labels)
    return in_labels, out_labels


def _has_bodies(g: Graph) -> bool:
    from mnn_expr import _native

    return any(isinstance(v, _native.SubGraph) for n in g.nodes for v in n.attrs.values())


def graph_to_onnx(g: Graph, *, opset: int = 17, dynamic_axes: Optional[dict] = None,
                  example_shapes: Optional[list] = None, graph_name: str = "mnnpy",
                  constant_names: Optional[dict] = None) -> Any:
    """Maps a traced :class:`Graph` to an ``onnx.ModelProto`` (not yet checked).

    ``constant_names``: name -> array; a constant of a control-flow body holding one of these arrays is
    stored under that name (body constants are not named after module attributes by the trace).

    >>> import mnn_expr as F
    >>> m = graph_to_onnx(trace(lambda x: F.exp(x), [F.zeros((2,))]))
    >>> [n.op_type for n in m.graph.node]
    ['Exp']
    """
    onnx = onnx_module()
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"export_onnx: opset {opset} is not supported (use {MIN_OPSET}..{newest})")
    e = Emitter(g, opset, ONNX_OPS)
    names: dict = {}
    for vi in g.inputs:
        names[vi] = e.unique(g.values[vi].name)
    bodies = _has_bodies(g)
    for vi, arr in g.constants.items():
        names[vi] = e.unique(g.values[vi].name)
        e.initializer(names[vi], arr, g.values[vi].dtype)
        if bodies:  # a body reading this weight shares the initializer
            e.share(names[vi], arr, g.values[vi].dtype)
    if bodies:
        for name, arr in (constant_names or {}).items():
            e.const_names.setdefault(e.content_key(np.asarray(arr), _dtype_name(arr)), name)
    e.map_nodes(g, names)

    shapes = example_shapes or [[2 if d is None else d for d in g.values[vi].shape] for vi in g.inputs]
    in_labels, out_labels = _dim_labels(g, dynamic_axes, shapes)
    outputs = []
    for vi, labels in zip(g.outputs, out_labels):
        v = g.values[vi]
        if names[vi] != v.name:  # an alias of another value (an identity mapping): copy it out
            out = e.unique(v.name) if v.name in e.used else v.name
            e.used.add(out)
            e.nodes.append(onnx.helper.make_node("Identity", [names[vi]], [out]))
            names[vi] = out
        outputs.append(value_info(names[vi], v, labels))
    inputs = [value_info(names[vi], g.values[vi], labels) for vi, labels in zip(g.inputs, in_labels)]
    graph = onnx.helper.make_graph(e.nodes, graph_name, inputs, outputs, initializer=e.inits)
    opsets = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="mnnpy",
                                   ir_version=onnx.helper.find_min_ir_version_for(opsets))
    import mnn_expr

    model.producer_version = mnn_expr.__version__
    return model


def _dtype_name(arr: Any) -> str:
    return str(np.asarray(arr).dtype)


def _module_arrays(model: Any) -> dict:
    """Qualified name -> array of a Module's parameters and buffers (empty for a function)."""
    out: dict = {}
    if hasattr(model, "named_parameters") and hasattr(model, "named_buffers"):
        for name, v in (*model.named_parameters(), *model.named_buffers()):
            if hasattr(v, "_numpy"):
                out.setdefault(name, np.asarray(v._numpy()))
    return out


def export_onnx(model_or_fn: Union[Callable, Any], example_inputs: Any, path: Optional[Union[str, os.PathLike]] = None,
                *, input_names: Optional[Sequence[str]] = None, output_names: Optional[Sequence[str]] = None,
                dynamic_axes: Optional[dict] = None, opset: int = 17, lower_control_flow: bool = False) -> Any:
    """Exports a Module or a function of Vars to ONNX; returns the ``onnx.ModelProto`` (and writes ``path``).

    ``dynamic_axes``: ``{input_name: [axis, ...]}`` or ``{input_name: {axis: "label"}}``; each dynamic
    dimension becomes a ``dim_param`` (the label, or ``"<input>_dim<axis>"``), and an output dimension
    that follows it gets the same name (else ``"<output>_dim<axis>"``).  Entries naming outputs (as in
    ``torch.onnx.export``) may rename the output dims the trace found dynamic; their sizes always follow
    from the inputs.

    Control flow becomes ``If``/``Loop`` nodes with sub-graphs; ``lower_control_flow=True`` writes a plain
    graph instead (``cond`` as ``Where`` of both branches, ``fori_loop``/``scan`` unrolled; a ``while_loop``
    cannot be lowered and raises).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> m = export_onnx(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), [F.zeros((2, 4))],
    ...                 input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    >>> [i.name for i in m.graph.initializer], m.graph.output[0].type.tensor_type.shape.dim[0].dim_param
    (['0.weight', '0.bias'], 'batch')
    """
    onnx = onnx_module()
    if not isinstance(example_inputs, (list, tuple)):
        example_inputs = [example_inputs]
    in_names = list(input_names) if input_names is not None else [f"input{i}" for i in range(len(example_inputs))]
    in_axes = {k: list(v) for k, v in (dynamic_axes or {}).items() if k in in_names}
    with lowered() if lower_control_flow else contextlib.nullcontext():
        g = trace(model_or_fn, example_inputs, input_names=input_names, output_names=output_names,
                  dynamic_axes=in_axes or None)
    out_names = [g.values[vi].name for vi in g.outputs]
    for k in dynamic_axes or {}:
        if k not in in_names and k not in out_names:
            raise ValueError(f"export_onnx: dynamic_axes names {k!r}, which is neither an input ({in_names}) "
                             f"nor an output ({out_names})")
    model = graph_to_onnx(g, opset=opset, dynamic_axes=dynamic_axes,
                          example_shapes=[list(getattr(x, "shape", np.shape(x))) for x in example_inputs],
                          graph_name=type(model_or_fn).__name__ if hasattr(model_or_fn, "parameters") else
                          getattr(model_or_fn, "__name__", "mnnpy"),
                          constant_names=_module_arrays(model_or_fn) if _has_bodies(g) else None)
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model
