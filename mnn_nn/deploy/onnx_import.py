"""ONNX import: run an ONNX model with ``mnn_expr`` ops (the converter's front end).

:func:`load_onnx` reads an ONNX file (or an ``onnx.ModelProto``), checks it, turns its
initialisers into constant Vars once, and returns an :class:`OnnxModel`.  Calling the
model walks the node list and maps every node onto ``mnn_expr`` functions (native
primitives where they exist: ``conv2d``, ``max_pool2d``, ``matmul``, ``softmax``,
``layer_norm``, ...), so

- shapes are dynamic: the computation is built per call, and the same model runs on
  new input sizes;
- a call works in eager mode, inside ``mnn_expr.lazy_eval(True)`` and under
  ``mnn_expr.compile``: values of tensors that depend on the inputs are never read,
  except where ONNX makes an op's output shape depend on them (``Reshape``'s shape,
  ``Slice``'s bounds, ``Expand``, ``ConstantOfShape``, ``Range``, ``TopK``'s k,
  ``Resize``'s sizes, loop trip counts, ...).  ``Shape`` is computed from the static
  shape of its input, and nodes whose inputs are all known (initialisers,
  ``Constant``, ``Shape`` results) are folded to numbers as they run, so the usual
  ``Shape -> Gather -> Concat -> Reshape`` chains never read a tensor.  Nodes that
  depend only on initialisers are folded once, at load time.

The op handlers live in :mod:`~mnn_nn.deploy.onnx_ops` (elementwise, activations,
casts, constants), :mod:`~mnn_nn.deploy.onnx_tensor_ops` (movement, indexing,
reductions, matmul), :mod:`~mnn_nn.deploy.onnx_nn_ops` (convolution, pooling,
normalisation, resize), :mod:`~mnn_nn.deploy.onnx_rnn_ops` (LSTM, GRU, RNN) and
:mod:`~mnn_nn.deploy.onnx_seq_ops` (sequences, optionals);
:data:`SUPPORTED_OPS` lists the op types of the default ONNX domain that are mapped.
Control flow (``If``, ``Loop``, ``Scan``) is here: ``If`` with a known condition takes
its branch, otherwise both branches run and ``where`` selects; loops run their body in
Python.

>>> import numpy as np, onnx
>>> from onnx import helper, TensorProto
>>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])])
>>> m = load_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
>>> m.input_names, m.input_shapes
(['x'], [(None, 3)])
>>> m(np.array([[-1.0, 0.5, 2.0]], np.float32)).tolist()
[[0.0, 0.5, 2.0]]
"""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np

import mnn_expr as F
from mnn_expr import Var

__all__ = ["load_onnx", "OnnxModel", "SUPPORTED_OPS", "unsupported_ops", "onnx_dtype"]

# ONNX TensorProto element types -> mnnpy dtypes (the ones we store).
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
                11: "float64", 16: "bfloat16"}
_ONNX_TYPE_NAMES = {4: "uint16", 5: "int16", 8: "string", 12: "uint32", 13: "uint64", 14: "complex64",
                    15: "complex128", 17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2",
                    20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1"}
_DEFAULT_DOMAINS = ("", "ai.onnx")


def onnx_dtype(elem_type: int, what: str = "") -> str:
    """The mnnpy dtype name of an ONNX ``TensorProto`` element type; NotImplementedError if we lack it.

    >>> onnx_dtype(1), onnx_dtype(7)
    ('float32', 'int64')
    """
    name = _ONNX_DTYPES.get(int(elem_type))
    if name is None:
        kind = _ONNX_TYPE_NAMES.get(int(elem_type), f"element type {elem_type}")
        raise NotImplementedError(f"{what + ': ' if what else ''}ONNX dtype {kind} is not supported by mnnpy")
    return name


class _EmptyOptional:
    """The value of an ONNX optional that holds nothing (a model output of this kind is returned as None)."""

    _instance: Optional[_EmptyOptional] = None

    def __new__(cls) -> _EmptyOptional:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "EMPTY_OPTIONAL"


EMPTY_OPTIONAL = _EmptyOptional()
# Values flowing between nodes: a Var (tensor), a list of Vars (ONNX sequence), EMPTY_OPTIONAL.
_VALUE_TYPES = (Var, list, _EmptyOptional)


class _Handler:
    """An op handler: ``fn(node_call) -> Var | list``.

    ``fold=False`` keeps it out of constant folding (control flow); ``static=True`` says its
    results are constants known without computing (Shape, Size, ...), so they fold onward.
    """

    __slots__ = ("fn", "fold", "static")

    def __init__(self, fn: Callable, fold: bool = True, static: bool = False) -> None:
        self.fn, self.fold, self.static = fn, fold, static


_HANDLERS: dict[str, _Handler] = {}


def register(*op_types: str, fold: bool = True, static: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: registers a handler for ONNX ``op_types`` (default domain); see :class:`_Handler`."""

    def deco(fn: Callable) -> Callable:
        for t in op_types:
            _HANDLERS[t] = _Handler(fn, fold, static)
        return fn

    return deco


# ---- values and attributes ----------------------------------------------------------------------


def _tensor_to_numpy(t: Any) -> np.ndarray:
    """A TensorProto as a numpy array of a dtype we store (bfloat16 as float32, cast by the caller)."""
    from onnx import numpy_helper

    if t.data_type == 8:
        raise NotImplementedError(f"tensor {t.name!r}: string tensors are not supported by mnnpy")
    onnx_dtype(t.data_type, f"tensor {t.name!r}")
    arr = numpy_helper.to_array(t)
    if t.data_type == 16:
        arr = np.asarray(arr, dtype=np.float32)
    return np.array(arr, order="C", copy=False) if arr.flags.c_contiguous else np.array(arr, order="C")


def _input_var(v: Any, dtype: Optional[str]) -> Var:
    """A Var from array-like input data (bfloat16 arrays of ml_dtypes included), in ``dtype`` when given."""
    arr = np.asarray(v)
    if arr.dtype.name == "bfloat16":
        out = F.cast(F.asarray(arr.astype(np.float32)), "bfloat16")
        return out if dtype is None or dtype == "bfloat16" else F.cast(out, dtype)
    return F.asarray(arr, dtype) if dtype is not None else F.asarray(arr)


def _const_var(arr: np.ndarray, dtype: Optional[str] = None) -> Var:
    """A constant Var of ``arr``'s values in memory of its own (borrowed numpy memory could be
    rewritten, so kernels could not keep packed copies of it: conv weights would be repacked on
    every call), cast to ``dtype`` when given (bfloat16 arrives as float32)."""
    v = F.array(np.asarray(arr, order="C"))
    if dtype is not None and v.dtype.name != dtype:
        v = F.cast(v, dtype)
    return v


def _attr_value(a: Any) -> Any:
    """A Python value for an AttributeProto (strings decoded, tensors as numpy, graphs as GraphProto)."""
    from onnx import AttributeProto

    t = a.type
    if t == AttributeProto.FLOAT:
        return float(a.f)
    if t == AttributeProto.INT:
        return int(a.i)
    if t == AttributeProto.STRING:
        return a.s.decode("utf-8", "replace")
    if t == AttributeProto.TENSOR:
        return (_tensor_to_numpy(a.t), int(a.t.data_type))
    if t == AttributeProto.GRAPH:
        return a.g
    if t == AttributeProto.FLOATS:
        return [float(v) for v in a.floats]
    if t == AttributeProto.INTS:
        return [int(v) for v in a.ints]
    if t == AttributeProto.STRINGS:
        return [s.decode("utf-8", "replace") for s in a.strings]
    if t == AttributeProto.GRAPHS:
        return list(a.graphs)
    if t == AttributeProto.TENSORS:
        return [(_tensor_to_numpy(x), int(x.data_type)) for x in a.tensors]
    if t == AttributeProto.SPARSE_TENSOR:
        return a.sparse_tensor
    raise NotImplementedError(f"attribute {a.name!r}: attribute type {t} is not supported")


def _node_label(node: Any) -> str:
    return f"{node.op_type} node {node.name!r}" if node.name else f"{node.op_type} node (output {node.output[0]!r})"


# ---- one node's call ---------------------------------------------------------------------------


class NodeCall:
    """What an op handler sees of one node: its inputs (Vars), known constant values, attributes.

    ``x(i)`` is input ``i`` as a Var (None when absent), ``const(i)`` its value when known
    without computing (initialisers, ``Constant``, folded shape arithmetic), ``value(i)``
    its value, read if it must be (ONNX inputs that decide output shapes), ``attr(name,
    default)`` an attribute, ``opset`` the default domain's opset version.
    """

    __slots__ = ("node", "attrs", "inputs", "consts", "opset", "runner", "scope", "op_type")

    def __init__(self, node: Any, attrs: dict, inputs: list, consts: list, opset: int, runner: _Runner,
                 scope: Any) -> None:
        self.node, self.attrs, self.inputs, self.consts = node, attrs, inputs, consts
        self.opset, self.runner, self.scope, self.op_type = opset, runner, scope, node.op_type

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def label(self) -> str:
        return _node_label(self.node)

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    @property
    def n_outputs(self) -> int:
        return len(self.node.output)

    def wants(self, k: int) -> bool:
        """True when output ``k`` is named (an optional output the graph uses)."""
        return k < len(self.node.output) and self.node.output[k] != ""

    def x(self, i: int) -> Optional[Var]:
        return self.inputs[i] if i < len(self.inputs) else None

    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] is not None

    def const(self, i: int) -> Optional[np.ndarray]:
        return self.consts[i] if i < len(self.consts) else None

    def value(self, i: int) -> Optional[np.ndarray]:
        """Input ``i``'s value as numpy: known constants directly, otherwise the Var is read."""
        c = self.const(i)
        if c is not None:
            return c
        v = self.x(i)
        if v is None:
            return None
        try:
            return v.read()
        except ValueError as e:
            raise ValueError(f"{self.label}: input {i} ({self.node.input[i]!r}) decides the output shape, so its "
                             f"value must be known, but it depends on a traced input ({e})") from None

    def ints(self, i: int) -> Optional[list]:
        v = self.value(i)
        return None if v is None else [int(e) for e in np.asarray(v).reshape(-1)]

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def fail(self, msg: str) -> NotImplementedError:
        return NotImplementedError(f"{self.label}: {msg}")

    def error(self, msg: str) -> ValueError:
        return ValueError(f"{self.label}: {msg}")

    def run_graph(self, graph: Any, inputs: Sequence[Var], consts: Optional[Sequence] = None) -> tuple[list, list]:
        """Runs subgraph ``graph`` (an attribute) with ``inputs`` bound to its formal inputs (``consts``: their
        values where known); returns its output Vars and their known values (None where not known)."""
        return self.runner.run_subgraph(graph, list(inputs), list(consts or [None] * len(inputs)), self.scope)


# ---- the graph runner --------------------------------------------------------------------------


class _Graph:
    """A parsed graph: nodes with decoded attributes, initialisers as Vars and numpy values."""

    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.nodes = list(proto.node)
        self.attrs = [{a.name: _attr_value(a) for a in n.attribute} for n in self.nodes]
        self.init_vars: dict[str, Var] = {}
        self.init_consts: dict[str, np.ndarray] = {}
        for t in proto.initializer:
            arr = _tensor_to_numpy(t)
            self.init_consts[t.name] = arr
            self.init_vars[t.name] = _const_var(arr, onnx_dtype(t.data_type))
        if len(proto.sparse_initializer):
            raise NotImplementedError("sparse initialisers are not supported")
        self.input_names = [i.name for i in proto.input if i.name not in self.init_vars]
        self.output_names = [o.name for o in proto.output]
        self.skip: set[int] = set()  # nodes folded at load time


class _Runner:
    """Evaluates graphs node by node for one model (shared by the main graph and its subgraphs)."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self._subgraphs: dict[int, _Graph] = {}

    def subgraph(self, proto: Any) -> _Graph:
        g = self._subgraphs.get(id(proto))
        if g is None:
            g = self._subgraphs[id(proto)] = _Graph(proto)
        return g

    def run_subgraph(self, proto: Any, inputs: list, consts: list, scope: Any) -> tuple[list, list]:
        """Runs a subgraph (If branch, Loop / Scan body) in ``scope``; returns its output Vars and known values."""
        g = self.subgraph(proto)
        if len(inputs) != len(g.input_names):
            raise ValueError(f"subgraph {proto.name!r} takes {len(g.input_names)} inputs, got {len(inputs)}")
        env = scope[0].new_child(dict(g.init_vars))
        known = scope[1].new_child(dict(g.init_consts))
        for name, v, c in zip(g.input_names, inputs, consts):
            env[name] = v
            known[name] = c  # None shadows an outer constant of the same name
        self.run_nodes(g, env, known)
        outs = [self._lookup(env, o, proto.name) for o in g.output_names]
        return outs, [known.get(o) for o in g.output_names]

    @staticmethod
    def _lookup(env: Mapping, name: str, where: str) -> Var:
        try:
            return env[name]
        except KeyError:
            raise ValueError(f"graph {where!r}: value {name!r} is used but never produced") from None

    def run_nodes(self, g: _Graph, env: ChainMap, known: ChainMap, fold_only: bool = False) -> None:
        """Runs ``g``'s nodes into ``env`` (Vars) and ``known`` (numpy values of constant results).

        With ``fold_only`` (load time), only nodes whose inputs are all known run, and they are
        marked to be skipped later.
        """
        for idx, node in enumerate(g.nodes):
            if idx in g.skip:
                continue
            if node.domain not in _DEFAULT_DOMAINS:
                if fold_only:
                    continue
                raise NotImplementedError(f"{_node_label(node)}: op {node.op_type!r} of domain "
                                          f"{node.domain!r} is not supported")
            handler = _HANDLERS.get(node.op_type)
            names = list(node.input)
            consts = [None if n == "" else known.get(n) for n in names]
            foldable = handler is not None and handler.fold and all(
                c is not None for n, c in zip(names, consts) if n != "")
            if fold_only and not foldable:
                continue
            if handler is None:
                raise NotImplementedError(f"{_node_label(node)}: ONNX op {node.op_type!r} is not supported "
                                          f"(supported: see mnn_nn.deploy.onnx_import.SUPPORTED_OPS)")
            inputs = [None if n == "" else self._lookup(env, n, g.proto.name) for n in names]
            call = NodeCall(node, g.attrs[idx], inputs, consts, self.opset, self, (env, known))
            if foldable:
                with F.lazy_eval(False):
                    outs = _as_list(handler.fn(call))
            else:
                outs = _as_list(handler.fn(call))
            for k, name in enumerate(node.output):
                if name == "":
                    continue
                if k >= len(outs) or outs[k] is None:
                    raise NotImplementedError(f"{_node_label(node)}: output {k} ({name!r}) is not computed")
                v = outs[k]
                if not isinstance(v, _VALUE_TYPES):
                    raise TypeError(f"{_node_label(node)}: handler returned {type(v).__name__} for output {k}")
                env[name] = v
                known[name] = _read_const(v) if foldable or handler.static else None
            if fold_only:
                g.skip.add(idx)


def _read_const(v: Any) -> Optional[np.ndarray]:
    return v.read() if isinstance(v, Var) else None


def _as_list(r: Any) -> list:
    """A handler's outputs: one Var (or EMPTY_OPTIONAL), or a list with one entry per output."""
    if isinstance(r, (Var, _EmptyOptional)):
        return [r]
    return list(r)


def _names_used(node: Any, out: set) -> None:
    """Adds the value names ``node`` reads, its subgraphs' included (they may read the outer scope)."""
    out.update(node.input)
    for a in node.attribute:
        for sub in ([a.g] if a.type == a.GRAPH else list(a.graphs) if a.type == a.GRAPHS else []):
            for inner in sub.node:
                _names_used(inner, out)


def _unsupported(graph: Any, out: list) -> None:
    for node in graph.node:
        if node.domain not in _DEFAULT_DOMAINS or node.op_type not in _HANDLERS:
            out.append((node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}",
                        node.name))
        for a in node.attribute:
            if a.type == a.GRAPH:
                _unsupported(a.g, out)
            elif a.type == a.GRAPHS:
                for sub in a.graphs:
                    _unsupported(sub, out)


# ---- load-time rewrites ---------------------------------------------------------------------------


def _fold_conv_batch_norm(g: _Graph, opset: int, outputs: Sequence[str]) -> int:
    """Folds inference-mode ``BatchNormalization`` nodes into the ``Conv`` before them.

    When a Conv's weight (and bias, if any) and the BatchNormalization's four statistics are
    initialisers, and the Conv's output is read by that BatchNormalization alone (and is no
    graph output), the Conv gets new initialisers ``W * a`` and ``(b - mean) * a + beta`` with
    ``a = gamma / sqrt(var + eps)`` (computed in float64, stored in the weight's dtype) and
    takes over the BatchNormalization's output, which is dropped (onnxruntime folds the same
    way).  Returns the number of folded pairs.
    """
    if opset < 9:
        return 0
    readers: dict[str, int] = {}
    for node in g.nodes:
        used: set = set()
        _names_used(node, used)
        for name in used:
            readers[name] = readers.get(name, 0) + 1
    producer = {out: i for i, node in enumerate(g.nodes) for out in node.output if out}
    consts = g.init_consts
    drop: set[int] = set()
    for bi, bn in enumerate(g.nodes):
        if bn.op_type != "BatchNormalization" or bn.domain not in _DEFAULT_DOMAINS or len(bn.input) != 5:
            continue
        attrs = g.attrs[bi]
        if any(o for o in bn.output[1:]) or (opset >= 14 and attrs.get("training_mode", 0)):
            continue
        ci = producer.get(bn.input[0])
        if ci is None or ci in drop:
            continue
        conv = g.nodes[ci]
        if (conv.op_type != "Conv" or conv.domain not in _DEFAULT_DOMAINS or readers.get(bn.input[0]) != 1
                or bn.input[0] in outputs):
            continue
        w = consts.get(conv.input[1])
        b = consts.get(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
        stats = [consts.get(name) for name in bn.input[1:]]
        if w is None or w.dtype.kind != "f" or (len(conv.input) > 2 and conv.input[2] and b is None):
            continue
        if any(v is None or v.shape != (w.shape[0],) for v in stats):
            continue
        gamma, beta, mean, var = (v.astype(np.float64) for v in stats)
        a = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
        w2 = (w.astype(np.float64) * a.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
        b2 = (((np.zeros_like(a) if b is None else b.astype(np.float64)) - mean) * a + beta).astype(w.dtype)
        wn, bnm = f"{bn.output[0]}__folded_weight", f"{bn.output[0]}__folded_bias"
        for name, arr in ((wn, w2), (bnm, b2)):
            consts[name] = arr
            g.init_vars[name] = _const_var(arr)
        import onnx

        folded = onnx.NodeProto()
        folded.CopyFrom(conv)
        del folded.input[:]
        folded.input.extend([conv.input[0], wn, bnm])
        del folded.output[:]
        folded.output.append(bn.output[0])
        g.nodes[ci] = folded
        drop.add(bi)
    if drop:
        g.nodes = [n for i, n in enumerate(g.nodes) if i not in drop]
        g.attrs = [a for i, a in enumerate(g.attrs) if i not in drop]
    return len(drop)


# ---- the model -------------------------------------------------------------------------------------


def _value_info(vi: Any) -> tuple[str, Optional[tuple], Optional[str]]:
    """(kind, shape, dtype) of a ValueInfoProto: kind "tensor", "sequence" or "optional" (shape and dtype
    of the tensors inside for the latter two); shape None when the rank is unknown, None for dynamic dims;
    dtype None when undeclared (a name we lack, e.g. "int16", when not supported)."""
    t, kind = vi.type, "tensor"
    while True:
        if t.HasField("sequence_type"):
            kind, t = "sequence", t.sequence_type.elem_type
        elif t.HasField("optional_type"):
            kind, t = "optional" if kind == "tensor" else kind, t.optional_type.elem_type
        else:
            break
    if not t.HasField("tensor_type"):
        return kind, None, None
    tt = t.tensor_type
    shape = None
    if tt.HasField("shape"):
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in tt.shape.dim)
    dtype = _ONNX_DTYPES.get(int(tt.elem_type)) or _ONNX_TYPE_NAMES.get(int(tt.elem_type))
    return kind, shape, dtype


ModelLike = Union[str, "os.PathLike[str]", bytes, Any]


def _tensor_input(name: str, v: Any, shape: Optional[tuple], dtype: Optional[str]) -> Var:
    """A model input as a Var of the declared dtype, its rank checked."""
    if not isinstance(v, Var):
        v = _input_var(v, dtype)
    elif dtype is not None and v.dtype.name != dtype:
        v = F.cast(v, dtype)
    if shape is not None and len(shape) != v.ndim:
        raise ValueError(f"input {name!r}: expected {len(shape)} dims (declared shape "
                         f"{tuple('?' if d is None else d for d in shape)}), got shape {v.shape}")
    return v


class OnnxModel:
    """A loaded ONNX model: call it with numpy arrays or Vars (positionally or by input name).

    Returns one Var for a one-output model, else a list of Vars in ``output_names`` order.

    Attributes: ``input_names``, ``output_names``, ``input_shapes`` / ``output_shapes``
    (declared shapes, None for dynamic dims), ``input_dtypes`` / ``output_dtypes``,
    ``opset`` (default-domain opset version), ``proto`` (the ModelProto),
    ``folded_batch_norms`` (BatchNormalization nodes folded into the Conv before them).

    >>> import numpy as np
    >>> from onnx import helper, TensorProto
    >>> g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"])], "g",
    ...     [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N"]) for n in "ab"],
    ...     [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N"])])
    >>> m = load_onnx(helper.make_model(g))
    >>> m(b=np.ones(2, np.float32), a=np.ones(2, np.float32)).tolist()
    [2.0, 2.0]
    """

    def __init__(self, proto: Any, opset: int) -> None:
        self.proto = proto
        self.opset = opset
        self._runner = _Runner(opset)
        self._graph = _Graph(proto.graph)
        g = self._graph
        self.input_names: list[str] = list(g.input_names)
        self.output_names: list[str] = list(g.output_names)
        infos = {i.name: _value_info(i) for i in proto.graph.input}
        self.input_kinds: list[str] = [infos[n][0] for n in self.input_names]
        self.input_shapes: list[Optional[tuple]] = [infos[n][1] for n in self.input_names]
        self.input_dtypes: list[Optional[str]] = [infos[n][2] for n in self.input_names]
        outs = [_value_info(o) for o in proto.graph.output]
        self.output_kinds: list[str] = [k for k, _, _ in outs]
        self.output_shapes: list[Optional[tuple]] = [s for _, s, _ in outs]
        self.output_dtypes: list[Optional[str]] = [d for _, _, d in outs]
        # BatchNormalization after a convolution becomes the convolution's weights and bias.
        self.folded_batch_norms = _fold_conv_batch_norm(g, opset, self.output_names)
        # Fold what depends on initialisers only, once.
        self._env: dict[str, Var] = g.init_vars
        self._known: dict[str, np.ndarray] = g.init_consts
        g.init_vars, g.init_consts = {}, {}  # (held once, by the model, so pruning below frees them)
        env, known = ChainMap(self._env), ChainMap(self._known)
        try:
            self._runner.run_nodes(g, env, known, fold_only=True)
        except NotImplementedError:
            pass  # reported (or raised) when the node runs
        # Keep only what later nodes (subgraphs included) or the outputs use.
        used = set(self.output_names)
        for idx, node in enumerate(g.nodes):
            if idx not in g.skip:
                _names_used(node, used)
        for name in [k for k in self._env if k not in used]:
            del self._env[name]
            self._known.pop(name, None)

    def unsupported_ops(self) -> list[tuple[str, str]]:
        """``(op_type, node_name)`` of every node (subgraphs included) that has no mapping."""
        out: list = []
        _unsupported(self.proto.graph, out)
        return out

    def _bind(self, args: tuple, kwargs: dict) -> dict:
        if len(args) > len(self.input_names):
            raise TypeError(f"OnnxModel: {len(self.input_names)} inputs {self.input_names}, got {len(args)} "
                            "positional arguments")
        bound = dict(zip(self.input_names, args))
        for k, v in kwargs.items():
            if k not in self.input_names:
                raise TypeError(f"OnnxModel: no input named {k!r} (inputs: {self.input_names})")
            if k in bound:
                raise TypeError(f"OnnxModel: input {k!r} given twice")
            bound[k] = v
        missing = [n for n in self.input_names if n not in bound]
        if missing:
            raise TypeError(f"OnnxModel: missing inputs {missing}")
        out = {}
        for name, kind, shape, dtype in zip(self.input_names, self.input_kinds, self.input_shapes,
                                            self.input_dtypes):
            v = bound[name]
            if dtype is not None and dtype not in _ONNX_DTYPES.values():
                raise NotImplementedError(f"input {name!r}: ONNX dtype {dtype} is not supported by mnnpy")
            if kind == "optional" and v is None:
                out[name] = EMPTY_OPTIONAL
            elif kind == "sequence":
                if v is None:
                    out[name] = EMPTY_OPTIONAL
                elif not isinstance(v, (list, tuple)):
                    raise TypeError(f"input {name!r} is a sequence: pass a list of arrays, got {type(v).__name__}")
                else:
                    out[name] = [_tensor_input(name, e, shape, dtype) for e in v]
            else:
                out[name] = _tensor_input(name, v, shape, dtype)
        return out

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Runs the model on ``args`` / ``kwargs`` (numpy arrays or Vars; a list of them for a sequence
        input, None for an empty optional).  A sequence output is a list of Vars, an empty optional None."""
        env = ChainMap(self._bind(args, kwargs), self._env)
        known = ChainMap({}, self._known)
        self._runner.run_nodes(self._graph, env, known)
        outs = [_Runner._lookup(env, n, self._graph.proto.name) for n in self.output_names]
        outs = [None if o is EMPTY_OPTIONAL else o for o in outs]
        return outs[0] if len(outs) == 1 else outs

    def __repr__(self) -> str:
        ins = ", ".join(f"{n}: {'' if k == 'tensor' else k + ' of '}{d}{'[?]' if s is None else list(s)}"
                        for n, k, s, d in zip(self.input_names, self.input_kinds, self.input_shapes,
                                              self.input_dtypes))
        return (f"OnnxModel(opset {self.opset}, {len(self._graph.nodes)} nodes; inputs {ins}; "
                f"outputs {self.output_names})")


def _load_proto(path_or_model: ModelLike) -> Any:
    import onnx

    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    if isinstance(path_or_model, bytes):
        return onnx.load_model_from_string(path_or_model)
    if isinstance(path_or_model, (str, os.PathLike)):
        if not os.path.exists(path_or_model):
            raise FileNotFoundError(f"load_onnx: no such file {os.fspath(path_or_model)!r}")
        try:
            return onnx.load(os.fspath(path_or_model))
        except Exception as e:  # a malformed file: say so
            raise ValueError(f"load_onnx: {os.fspath(path_or_model)!r} is not a readable ONNX model ({e})") from e
    raise TypeError(f"load_onnx: expected a path, bytes or an onnx.ModelProto, got {type(path_or_model).__name__}")


def _default_opset(proto: Any) -> int:
    for o in proto.opset_import:
        if o.domain in _DEFAULT_DOMAINS:
            return int(o.version)
    return 1


def unsupported_ops(path_or_model: ModelLike) -> list[tuple[str, str]]:
    """``(op_type, node_name)`` of the nodes of a model (subgraphs included) that we cannot map.

    >>> from onnx import helper
    >>> g = helper.make_graph([helper.make_node("Bernoulli", ["x"], ["y"], name="b")], "g", [], [])
    >>> unsupported_ops(helper.make_model(g))
    [('Bernoulli', 'b')]
    """
    out: list = []
    _unsupported(_load_proto(path_or_model).graph, out)
    return out


def load_onnx(path_or_model: ModelLike, *, strict: bool = True) -> OnnxModel:
    """Loads an ONNX model (a file path, serialized bytes or an ``onnx.ModelProto``) to run with mnnpy.

    ``strict=True`` runs ``onnx.checker`` on the model and raises NotImplementedError at
    load time, naming every unsupported op and node; with ``strict=False`` a malformed
    or partly unsupported model still loads and an unsupported node raises when it runs.
    Model-local functions are inlined.

    >>> import numpy as np
    >>> from onnx import helper, TensorProto
    >>> g = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    >>> load_onnx(helper.make_model(g))(np.zeros((1, 2), np.float32)).tolist()
    [[0.5, 0.5]]
    """
    import onnx

    proto = _load_proto(path_or_model)
    if strict:
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as e:
            raise ValueError(f"load_onnx: the model is not valid ONNX: {e}") from e
    if len(proto.functions):
        import onnx.inliner

        proto = onnx.inliner.inline_local_functions(proto)
    if strict:
        missing = unsupported_ops(proto)
        if missing:
            listed = ", ".join(f"{t} (node {n!r})" for t, n in missing)
            raise NotImplementedError(f"load_onnx: unsupported ONNX ops: {listed}")
    return OnnxModel(proto, _default_opset(proto))


# ---- control flow --------------------------------------------------------------------------------


def _known_bool(n: NodeCall, i: int) -> Optional[bool]:
    """Input ``i`` as a bool when its value is known or already computed (reading it computes nothing)."""
    c = n.const(i)
    if c is not None:
        return bool(np.asarray(c).reshape(-1)[0])
    v = n.x(i)
    if v is not None and v._computed:
        return bool(np.asarray(v.read()).reshape(-1)[0])
    return None


@register("If", fold=False)
def _if(n: NodeCall) -> list:
    """A known condition takes its branch; otherwise both branches run and ``where`` selects."""
    known = _known_bool(n, 0)
    if known is not None:
        return n.run_graph(n.attr("then_branch" if known else "else_branch"), [])[0]
    then_out, _ = n.run_graph(n.attr("then_branch"), [])
    else_out, _ = n.run_graph(n.attr("else_branch"), [])
    if all(isinstance(a, Var) and isinstance(b, Var) and a.shape == b.shape and a.dtype == b.dtype
           for a, b in zip(then_out, else_out)):
        cond = F.reshape(n.x(0), [])
        return [F.where(cond, a, same) for a, same in zip(then_out, else_out)]
    take = bool(np.asarray(n.value(0)).reshape(-1)[0])  # shapes differ (or sequences): the value decides
    return then_out if take else else_out


def _stack_scan(parts: list, n: NodeCall, k: int, axis: int = 0) -> Var:
    if not parts:
        raise n.fail(f"scan output {k} of a loop that ran no iterations has no known shape")
    return F.stack(parts, axis=axis)


@register("Loop", fold=False)
def _loop(n: NodeCall) -> list:
    """Runs the body in Python for the trip count and while the condition holds (both are read)."""
    body = n.attr("body")
    trip = None if not n.has(0) else int(np.asarray(n.value(0)).reshape(-1)[0])
    cond = True if not n.has(1) else bool(np.asarray(n.value(1)).reshape(-1)[0])
    carried = [n.x(i) for i in range(2, n.n_inputs)]
    known = [n.const(i) for i in range(2, n.n_inputs)]
    n_scan = len(body.output) - 1 - len(carried)
    scans: list = [[] for _ in range(n_scan)]
    i = 0
    while (trip is None or i < trip) and cond:
        it, c = np.array(i, np.int64), np.array(cond)
        outs, consts = n.run_graph(body, [_const_var(it), _const_var(c)] + carried, [it, c] + known)
        cond_c = consts[0]
        cond = bool(np.asarray(cond_c if cond_c is not None else outs[0].read()).reshape(-1)[0])
        carried, known = outs[1:1 + len(carried)], consts[1:1 + len(carried)]
        for k in range(n_scan):
            scans[k].append(outs[1 + len(carried) + k])
        i += 1
    return carried + [_stack_scan(p, n, k) for k, p in enumerate(scans)]


def _take(v: Var, axis: int, i: int) -> Var:
    """``v`` at index ``i`` of ``axis`` (that axis removed)."""
    begins, ends = [0] * v.ndim, list(v.shape)
    begins[axis], ends[axis] = i, i + 1
    sl = F.apply("slice", [v], begins=begins, ends=ends, steps=[1] * v.ndim)[0]
    return F.squeeze(sl, axis)


def _scan_loop(n: NodeCall, body: Any, states: list, xs: list, in_axes: list, in_dirs: list, out_axes: list,
               out_dirs: list) -> list:
    n_out = len(body.output) - len(states)
    in_axes = [a % xs[j].ndim for j, a in enumerate(in_axes)]
    T = xs[0].shape[in_axes[0]] if xs else 0
    scans: list = [[] for _ in range(n_out)]
    for t in range(T):
        slices = [_take(v, in_axes[j], T - 1 - t if in_dirs[j] else t) for j, v in enumerate(xs)]
        outs, _ = n.run_graph(body, states + slices)
        states = outs[:len(states)]
        for k in range(n_out):
            scans[k].append(outs[len(states) + k])
    results = []
    for k, parts in enumerate(scans):
        if out_dirs[k]:
            parts = parts[::-1]
        rank = parts[0].ndim + 1 if parts else 1
        results.append(_stack_scan(parts, n, k, out_axes[k] % rank))
    return states + results


@register("Scan", fold=False)
def _scan(n: NodeCall) -> list:
    """Runs the body once per slice of the scan inputs, in Python."""
    body = n.attr("body")
    n_in = n.attr("num_scan_inputs")
    if n.opset < 9:  # opset 8: a batch axis first, optional sequence_lens as input 0
        if n.has(0):
            lens = np.asarray(n.value(0)).reshape(-1)
            if np.any(lens != n.x(n.n_inputs - 1).shape[1]):
                raise n.fail("Scan of opset 8 with sequence_lens shorter than the sequences is not supported")
        states = [n.x(i) for i in range(1, n.n_inputs - n_in)]
        xs = [n.x(i) for i in range(n.n_inputs - n_in, n.n_inputs)]
        dirs = n.attr("directions") or [0] * n_in
        n_out = len(body.output) - len(states)
        per_batch = [_scan_loop(n, body, [_take(v, 0, b) for v in states], [_take(v, 0, b) for v in xs],
                                [0] * n_in, dirs, [0] * n_out, [0] * n_out) for b in range(xs[0].shape[0])]
        return [F.stack([r[k] for r in per_batch], axis=0) for k in range(len(per_batch[0]))]
    states = [n.x(i) for i in range(n.n_inputs - n_in)]
    xs = [n.x(i) for i in range(n.n_inputs - n_in, n.n_inputs)]
    n_out = len(body.output) - len(states)
    return _scan_loop(n, body, states, xs, n.attr("scan_input_axes") or [0] * n_in,
                      n.attr("scan_input_directions") or [0] * n_in, n.attr("scan_output_axes") or [0] * n_out,
                      n.attr("scan_output_directions") or [0] * n_out)


# The handlers register themselves on import.
from . import onnx_nn_ops as _nn_ops  # noqa: E402,F401
from . import onnx_ops as _ops  # noqa: E402,F401
from . import onnx_rnn_ops as _rnn_ops  # noqa: E402,F401
from . import onnx_seq_ops as _seq_ops  # noqa: E402,F401
from . import onnx_tensor_ops as _tensor_ops  # noqa: E402,F401

SUPPORTED_OPS: frozenset = frozenset(_HANDLERS)
