"""mnn_nn: modules, layers, losses and data loading for mnnpy.

The training stack (Module, layers, losses, data loaders) is built on
``mnn_expr``; this package currently re-exports the activation functions
that layers will use.

>>> import mnn_expr as F, mnn_nn as nn
>>> nn.relu(F.array([-1.0, 2.0])).tolist()
[0.0, 2.0]
"""

from mnn_expr import elu, gelu, leaky_relu, prelu, relu, relu6, selu, sigmoid, silu, softplus, softsign, tanh

__all__ = ["elu", "gelu", "leaky_relu", "prelu", "relu", "relu6", "selu", "sigmoid", "silu", "softplus", "softsign",
           "tanh"]
