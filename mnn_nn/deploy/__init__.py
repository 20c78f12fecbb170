"""Deployment: trace models into graphs, our ``.mnnx`` model format, ONNX export and import.

- ``graph``: :func:`trace` turns a Module or function plus example inputs into a
  :class:`Graph` (nodes of primitives from the op table, constants, named inputs/outputs).
- ``mnnx``: :func:`export` writes ``.mnnx`` files, :func:`load` runs them (the native
  runtime behind the ``mnnx-run`` CLI); MNN's ``save`` / ``load_as_dict`` /
  ``load_module_from_file`` spellings.
- ``onnx_export``: :func:`export_onnx` writes ONNX (opset 17+) checked by ``onnx.checker``; one
  table (``ONNX_OPS``) maps every primitive.
- ``onnx_import``: :func:`load_onnx` runs an ONNX model through mnn_expr (``SUPPORTED_OPS``);
  ``mnnpy convert in.onnx out.mnnx`` (``cli``) turns it into our format.

``mnn_nn.export`` and ``mnn_nn.load`` are the functions of ``mnnx`` (this package is named
``deploy`` so that ``mnn_nn.export`` can be the function the issue tracker and users expect).
"""

from .graph import Graph, Node, Value, graph_of, trace
from .mnnx import (
                   LoadedModel,
                   export,
    export_training_step,
                   load,
                   load_as_dict,
                   load_as_list,
                   load_module_from_file,
                   runtime_cli,
                   save,
                   save_graph,
)
from .onnx_export import ONNX_OPS, export_onnx, graph_to_onnx
from .onnx_import import SUPPORTED_OPS, OnnxModel, load_onnx, unsupported_ops

__all__ = ["Graph", "Node", "Value", "graph_of", "trace", "LoadedModel", "export", "export_training_step", "load",
           "load_as_dict", "load_as_list", "load_module_from_file", "runtime_cli", "save", "save_graph",
           "ONNX_OPS", "export_onnx", "graph_to_onnx", "SUPPORTED_OPS", "OnnxModel", "load_onnx", "unsupported_ops"]
