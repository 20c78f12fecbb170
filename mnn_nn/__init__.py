"""mnn_nn: modules, layers, initialisers and losses for mnnpy (PyTorch's API, MNN's names as aliases).

- :class:`Module` (``mnn_nn.module``): parameters/buffers/children registered by
  attribute assignment, ``state_dict`` / ``load_state_dict``, ``train`` / ``eval``;
  ``parameters`` is both MNN's list property and PyTorch's method.
- Layers (``mnn_nn.layers``): ``Linear``, ``Conv1d``, ``Conv2d``, ``ConvTranspose2d``,
  ``BatchNorm1d/2d``, ``LayerNorm``, ``GroupNorm``, ``Dropout``, pooling, ``Embedding``,
  ``LSTM``, ``GRU``, ``MultiheadAttention``, ``TransformerEncoderLayer``, activations,
  containers; MNN's factories ``conv``, ``linear``, ``batch_norm``, ``dropout``.
- ``mnn_nn.init``: initialisers; ``mnn_nn.loss``: losses (PyTorch's and MNN's).
- The activation functions of ``mnn_expr`` are re-exported (``nn.relu`` ...).
- Deployment (``mnn_nn.deploy``): ``export(model, example_inputs, path)`` writes an ``.mnnx``
  file that ``load(path)``, the ``mnnx-run`` CLI and the C++ runtime run.

>>> import mnn_expr as F, mnn_nn as nn
>>> nn.relu(F.array([-1.0, 2.0])).tolist()
[0.0, 2.0]
"""

from mnn_expr import elu, gelu, leaky_relu, prelu, relu, relu6, selu, sigmoid, silu, softplus, softsign, tanh

from . import data, deploy, init, layers, loss
from .deploy import LoadedModel, export, export_onnx, load, load_module_from_file, load_onnx
from .layers import *  # noqa: F403
from .layers import __all__ as _layers_all
from .module import CallableParameterList, Module, Parameter, is_parameter

__all__ = ["elu", "gelu", "leaky_relu", "prelu", "relu", "relu6", "selu", "sigmoid", "silu", "softplus", "softsign",
           "tanh", "init", "layers", "loss", "deploy", "export", "export_onnx", "load", "load_onnx",
           "load_module_from_file",
           "LoadedModel", "Module", "Parameter", "CallableParameterList", "is_parameter",
           *_layers_all]
