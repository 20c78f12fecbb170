"""Layers (PyTorch's classes) and MNN's layer factories (``conv``, ``linear``, ``batch_norm``, ``dropout``)."""

from .activation import (
                         ELU,
                         GELU,
                         SELU,
                         Hardtanh,
                         LeakyReLU,
                         LogSoftmax,
                         Mish,
                         PReLU,
                         ReLU,
                         ReLU6,
                         Sigmoid,
                         SiLU,
                         Softmax,
                         Softplus,
                         Softsign,
                         Tanh,
                         softplus_beta,
)
from .attention import MultiheadAttention, TransformerEncoder, TransformerEncoderLayer
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv1d, Conv2d, ConvTranspose2d, conv
from .dropout import Dropout, dropout, dropout_fn
from .embedding import Embedding
from .linear import Flatten, Identity, Linear, Unflatten, linear
from .norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, batch_norm
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .rnn import GRU, LSTM

__all__ = [
    "ELU", "GELU", "SELU", "Hardtanh", "LeakyReLU", "LogSoftmax", "Mish", "PReLU", "ReLU", "ReLU6", "Sigmoid", "SiLU",
    "Softmax", "Softplus", "Softsign", "Tanh", "softplus_beta", "MultiheadAttention", "TransformerEncoderLayer",
    "TransformerEncoder",
    "ModuleDict", "ModuleList", "Sequential", "Conv1d", "Conv2d", "ConvTranspose2d", "conv", "Dropout", "dropout",
    "dropout_fn", "Embedding", "Flatten", "Identity", "Linear", "Unflatten", "linear", "BatchNorm1d", "BatchNorm2d",
    "GroupNorm", "LayerNorm", "batch_norm", "AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d", "GRU", "LSTM",
]
