"""The node emitter shared by the ONNX mappings (:mod:`mnn_nn.deploy.onnx_export`).

:class:`Emitter` collects ONNX nodes and initializers; :class:`Ctx` is one primitive being mapped
(its attributes, the ONNX names of its inputs, its input and output values).  A mapping is a function
``Ctx -> list of output names``.  :meth:`Emitter.map_nodes` maps the nodes of a graph through the
table of mappings, and :meth:`Emitter.subgraph` makes an ONNX ``GraphProto`` of a control-flow body
(``If`` branches, ``Loop`` bodies): value names are unique model-wide (one name set for the whole
model), and constants become initializers of the main graph (shared with equal constants; ONNX's
bodies read outer names), so a weight used in a loop body is stored once.

>>> from mnn_nn.deploy.graph import Graph
>>> e = Emitter(Graph(), 17)
>>> e.emit("Relu", [e.const([1.0, -1.0], "float32")]), len(e.inits)
('_relu1', 1)
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np

from .graph import Graph, Node, Value

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MIN_OPSET = 17

NP_DTYPE = {"bool": np.bool_, "int8": np.int8, "uint8": np.uint8, "int32": np.int32, "int64": np.int64,
             "float16": np.float16, "bfloat16": np.float32, "float32": np.float32, "float64": np.float64}
UNSIGNED_OF = {"int8": "uint8", "uint8": "uint8", "int32": "uint32", "int64": "uint64"}
HALF = ("float16", "bfloat16")
BITS = {"int8": 8, "uint8": 8, "int32": 32, "int64": 64}


def onnx_module() -> Any:
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("export_onnx needs the 'onnx' package: pip install onnx") from e
    return onnx


def elem_type(dtype: str) -> int:
    tp = onnx_module().TensorProto
    return {"bool": tp.BOOL, "int8": tp.INT8, "uint8": tp.UINT8, "int32": tp.INT32, "int64": tp.INT64,
            "uint32": tp.UINT32, "uint64": tp.UINT64, "float16": tp.FLOAT16, "bfloat16": tp.BFLOAT16,
            "float32": tp.FLOAT, "float64": tp.DOUBLE}[dtype]


def is_float(dtype: str) -> bool:
    return dtype in ("float16", "bfloat16", "float32", "float64")


def is_signed(dtype: str) -> bool:
    return dtype in ("int8", "int32", "int64")


# --------------------------------------------------------------------------- the emitter


class Emitter:
    """Collects ONNX nodes and initializers while the graph's nodes are mapped."""

    def __init__(self, g: Graph, opset: int, table: Optional[dict] = None) -> None:
        self.g, self.opset = g, opset
        self.table = table if table is not None else {}  # primitive name -> mapping (map_nodes)
        self.nodes: list = []
        self.inits: list = []
        self.used: set = set()
        self.temps: set = set()
        self._consts: dict = {}  # content key -> (initializer name, array)
        self.const_names: dict = {}  # content key -> a name for an initializer of that content (hoisting)
        self._n = 0

    def unique(self, hint: str) -> str:
        name, k = hint, 0
        while name in self.used:
            k += 1
            name = f"{hint}_{k}"
        self.used.add(name)
        return name

    def fresh(self, hint: str = "t") -> str:
        self._n += 1
        name = self.unique(f"_{hint}{self._n}")
        self.temps.add(name)
        return name

    def initializer(self, name: str, arr: np.ndarray, dtype: str) -> None:
        onnx = onnx_module()
        if dtype == "bfloat16":
            t = onnx.helper.make_tensor(name, onnx.TensorProto.BFLOAT16, list(arr.shape),
                                        np.asarray(arr, np.float32).ravel().tolist())
        else:
            t = onnx.numpy_helper.from_array(np.array(arr, NP_DTYPE.get(dtype, dtype), order="C"), name)
        self.inits.append(t)

    @staticmethod
    def content_key(arr: np.ndarray, dtype: str) -> tuple:
        """(dtype, shape, digest of the bytes): equal constants share one initializer."""
        a = np.ascontiguousarray(arr)
        return dtype, a.shape, str(a.dtype), hashlib.blake2b(a.reshape(-1).view(np.uint8), digest_size=16).digest()

    def share(self, name: str, arr: np.ndarray, dtype: str) -> None:
        """Registers initializer ``name`` (holding ``arr``) for reuse by :meth:`const`."""
        self._consts.setdefault(self.content_key(arr, dtype), (name, arr))

    def const(self, value: Any, dtype: str = "int64", hint: Optional[str] = None) -> str:
        """An initializer holding ``value`` as ``dtype``, shared between equal constants (a new one is named
        after the module attribute holding that content (:attr:`const_names`), else ``hint``)."""
        arr = np.asarray(value, dtype=NP_DTYPE.get(dtype, dtype))
        key = self.content_key(arr, dtype)
        hit = self._consts.get(key)
        if hit is None or not np.array_equal(hit[1], arr, equal_nan=arr.dtype.kind in "fc"):
            name = self.unique(self.const_names.get(key) or hint or f"_c{len(self._consts)}")
            self.initializer(name, arr, dtype)
            if hit is None:
                self._consts[key] = (name, arr)
            return name
        return hit[0]

    def emit(self, op: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any) -> Any:
        """Appends one node; returns its output name (a list when ``n_out != 1``)."""
        onnx = onnx_module()
        outs = [self.fresh(op.lower()) for _ in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(onnx.helper.make_node(op, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def map_nodes(self, g: Graph, names: dict) -> None:
        """Maps the nodes of ``g`` through :attr:`table`; ``names`` holds the ONNX names of ``g``'s inputs and
        constants and receives those of the node results (named after the graph values where a node makes
        them)."""
        outer_g = self.g
        self.g = g
        try:
            for node in g.nodes:
                fn = self.table.get(node.op)
                if fn is None:
                    raise NotImplementedError(f"export_onnx: primitive {node.op!r} has no ONNX mapping yet "
                                              f"(inputs {sig([g.values[i] for i in node.inputs])})")
                start = len(self.nodes)
                self.temps = set()
                outs = fn(Ctx(self, node, [names[i] for i in node.inputs]))
                if len(outs) != len(node.outputs):
                    raise AssertionError(f"export_onnx: mapping of {node.op!r} gave {len(outs)} outputs")
                rename: dict = {}
                for vi, name in zip(node.outputs, outs):
                    if name in self.temps and name not in rename:  # name the node's results after the graph values
                        rename[name] = self.unique(g.values[vi].name)
                        names[vi] = rename[name]
                    else:
                        names[vi] = name
                for n in self.nodes[start:]:
                    n.input[:] = [rename.get(s, s) for s in n.input]
                    n.output[:] = [rename.get(s, s) for s in n.output]
        finally:
            self.g = outer_g

    def subgraph(self, g: Graph, bound: dict, graph_name: str) -> Any:
        """An ONNX body (``GraphProto``) of graph ``g``: values in ``bound`` (value index -> outer name) read
        that outer value by name, the other inputs of ``g`` are the body's formal inputs, in order; constants
        become initializers of the main graph; the outputs are values made inside the body (an Identity copies
        an input, an outer value or a repeated output)."""
        onnx = onnx_module()
        saved = self.nodes, self.temps
        self.nodes = []
        try:
            names: dict = dict(bound)
            formal = []
            for vi in g.inputs:
                if vi not in bound:
                    names[vi] = self.unique(g.values[vi].name)
                    formal.append(value_info(names[vi], g.values[vi]))
            for vi, arr in g.constants.items():
                names[vi] = self.const(arr, g.values[vi].dtype, g.values[vi].name)
            self.map_nodes(g, names)
            made = {o for n in self.nodes for o in n.output}
            outputs, seen = [], set()
            for vi in g.outputs:
                name = names[vi]
                if name not in made or name in seen:
                    copy_ = self.unique(g.values[vi].name)
                    self.nodes.append(onnx.helper.make_node("Identity", [name], [copy_]))
                    name = copy_
                seen.add(name)
                outputs.append(value_info(name, g.values[vi]))
            return onnx.helper.make_graph(self.nodes, graph_name, formal, outputs)
        finally:
            self.nodes, self.temps = saved

    # small helpers used by many mappings
    def cast(self, x: str, src: str, dst: str) -> str:
        return x if src == dst else self.emit("Cast", [x], to=elem_type(dst))

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        return self.emit("Unsqueeze", [x, self.const(list(axes))])

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        return self.emit("Squeeze", [x, self.const(list(axes))])

    def shape_of(self, x: str, shape: Sequence, start: int = 0, end: Optional[int] = None) -> str:
        """A 1-d int64 tensor holding ``shape[start:end]`` of value ``x`` (a constant when static)."""
        end = len(shape) if end is None else end
        part = list(shape[start:end])
        if None not in part:
            return self.const(np.array(part, np.int64))
        return self.emit("Shape", [x], start=start, end=end)

    def shape_with(self, x: str, shape: Sequence, axis: int, value: int) -> str:
        """The shape of ``x`` with entry ``axis`` replaced by ``value``."""
        s = list(shape)
        s[axis] = value
        if None not in s:
            return self.const(np.array(s, np.int64))
        parts = [p for p in (self.shape_of(x, shape, 0, axis) if axis else None, self.const([value]),
                             self.shape_of(x, shape, axis + 1) if axis + 1 < len(shape) else None) if p]
        return self.emit("Concat", parts, axis=0)

    def reduce(self, op: str, x: str, axes: Sequence[int], keepdims: bool) -> str:
        """A Reduce* node: axes as an input (ReduceSum, and every reduction from opset 18) or an attribute."""
        keep = int(bool(keepdims))
        if not axes:
            return self.emit(op, [x], keepdims=keep)
        if op == "ReduceSum" or self.opset >= 18:
            return self.emit(op, [x, self.const(list(axes))], keepdims=keep)
        return self.emit(op, [x], axes=list(axes), keepdims=keep)

    def where(self, c: str, a: str, b: str) -> str:
        return self.emit("Where", [c, a, b])


class Ctx:
    """One node being mapped: its attributes, input names, input/output values."""

    def __init__(self, e: Emitter, node: Node, names: list) -> None:
        self.e, self.node, self.attrs = e, node, node.attrs
        self.x = names
        self.vin = [e.g.values[i] for i in node.inputs]
        self.vout = [e.g.values[i] for i in node.outputs]

    @property
    def dt(self) -> str:
        return self.vin[0].dtype

    @property
    def shape(self) -> tuple:
        return self.vin[0].shape

    def c(self, value: Any, dtype: Optional[str] = None) -> str:
        """A constant of the first input's dtype (or ``dtype``)."""
        return self.e.const(value, dtype or self.dt)

    def widened(self) -> Ctx:
        """This node with its float16/bfloat16 inputs cast to float32 (see :func:`in_float32`)."""
        w = copy.copy(self)
        w.x = [self.e.cast(x, v.dtype, "float32") if v.dtype in HALF else x for x, v in zip(self.x, self.vin)]
        w.vin = [Value(v.name, "float32", v.shape) if v.dtype in HALF else v for v in self.vin]
        w.vout = [Value(v.name, "float32", v.shape) if v.dtype in HALF else v for v in self.vout]
        return w

    def fail(self, why: str) -> NotImplementedError:
        return NotImplementedError(f"export_onnx: primitive {self.node.op!r} (inputs {sig(self.vin) or 'none'}; "
                                   f"attrs {self.attrs}): {why}")


def value_info(name: str, v: Value, labels: Optional[dict] = None) -> Any:
    """The ONNX ValueInfo of value ``v`` named ``name``; a dynamic dim takes ``labels[axis]`` (a dim_param)
    or stays unnamed."""
    shape = [(labels or {}).get(a) if d is None else int(d) for a, d in enumerate(v.shape)]
    return onnx_module().helper.make_tensor_value_info(name, elem_type(v.dtype), shape)


def sig(vals: Sequence[Value]) -> str:
    return ", ".join(f"{v.dtype}{list(v.shape)}" for v in vals)


Mapping = Callable[[Ctx], list]


def in_float32(fn: Mapping) -> Mapping:
    """A composed mapping evaluated in float32 for float16/bfloat16 nodes, as our kernels compute halves
    (widened, computed, rounded once), so the intermediate steps do not round to 16 bits."""
    def f(c: Ctx) -> list:
        if c.dt not in HALF:
            return fn(c)
        outs = fn(c.widened())
        return [c.e.cast(o, "float32", v.dtype) if v.dtype in HALF else o for o, v in zip(outs, c.vout)]
    f.__name__, f.__doc__ = fn.__name__, fn.__doc__
    return f
