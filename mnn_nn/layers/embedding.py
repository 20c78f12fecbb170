"""``Embedding``: a lookup table of ``num_embeddings`` vectors."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

import mnn_expr as F
from mnn_expr import Var

from .. import init
from ..module import Module
from ._util import param

__all__ = ["Embedding"]


class Embedding(Module):
    """Rows of ``weight`` [num_embeddings, embedding_dim] picked by integer indices (init N(0, 1);
    the ``padding_idx`` row starts at zero).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> nn.Embedding(10, 4)(F.array([[1, 2], [3, 4]])).shape
    (2, 2, 4)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} is out of range for {num_embeddings} rows")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        self.weight = param((num_embeddings, embedding_dim), dtype)
        init.normal_(self.weight)
        if padding_idx is not None:
            w = np.array(self.weight.read())
            w[padding_idx] = 0
            init._set(self.weight, w)

    def forward(self, indices: Any) -> Var:
        idx = indices if isinstance(indices, Var) else F.asarray(np.asarray(indices))
        if idx.dtype.is_floating or idx.dtype.name == "bool":
            raise TypeError(f"Embedding: indices must be integers, got {idx.dtype}")
        out = F.take(self.weight, idx, axis=0)
        if self.padding_idx is not None:  # as torch: the padding row gets no gradient
            keep = F.expand_dims(F.not_equal(idx, self.padding_idx), -1)
            out = F.where(keep, out, F.stop_gradient(out))
        return out

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s if self.padding_idx is None else s + f", padding_idx={self.padding_idx}"
