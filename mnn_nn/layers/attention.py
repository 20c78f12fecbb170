"""Attention layers: ``MultiheadAttention`` and ``TransformerEncoderLayer`` (PyTorch's API).

Masks: a boolean ``attn_mask`` / ``key_padding_mask`` marks positions that may
NOT be attended (True = masked, filled with -inf); a float mask is added to the
scores.  ``attn_mask`` is ``[L, S]`` or ``[N * num_heads, L, S]``;
``key_padding_mask`` is ``[N, S]``.  ``is_causal=True`` without ``attn_mask``
builds the causal mask.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Optional

import numpy as np

import mnn_expr as F
from mnn_expr import Var

from .. import init
from ..module import Module
from ._util import float_var, param
from .activation import GELU, ReLU
from .dropout import Dropout, dropout_fn
from .linear import Linear
from .norm import LayerNorm

__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder"]


def _mask_add(mask: Any, dtype: Any, what: str) -> Var:
    m = mask if isinstance(mask, Var) else F.asarray(np.asarray(mask))
    if m.dtype.name == "bool":
        return F.where(m, float("-inf"), F.zeros([], dtype))
    if not m.dtype.is_floating:
        raise TypeError(f"MultiheadAttention: {what} must be bool or float, got {m.dtype}")
    return m.astype(dtype) if m.dtype != dtype else m


class MultiheadAttention(Module):
    """Multi-head scaled dot-product attention with input/output projections.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)`` returns
    ``(output, weights)`` (weights None unless ``need_weights``; averaged over
    heads unless ``average_attn_weights=False``).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> mha = nn.MultiheadAttention(8, 2, batch_first=True)
    >>> out, w = mha(F.ones([3, 5, 8]), F.ones([3, 4, 8]), F.ones([3, 4, 8]))
    >>> out.shape, w.shape
    ((3, 5, 8), (3, 5, 4))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: Optional[int] = None,
                 vdim: Optional[int] = None, batch_first: bool = False, dtype: Any = "float32") -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else int(kdim)
        self.vdim = embed_dim if vdim is None else int(vdim)
        self.dropout, self.batch_first = float(dropout), batch_first
        self._same_dims = self.kdim == embed_dim and self.vdim == embed_dim
        if self._same_dims:
            self.in_proj_weight = param((3 * embed_dim, embed_dim), dtype)
            init.xavier_uniform_(self.in_proj_weight)
        else:  # PyTorch's separate projections when key/value sizes differ
            self.in_proj_weight = None
            self.q_proj_weight = param((embed_dim, embed_dim), dtype)
            self.k_proj_weight = param((embed_dim, self.kdim), dtype)
            self.v_proj_weight = param((embed_dim, self.vdim), dtype)
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        self.in_proj_bias = param((3 * embed_dim,), dtype) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if bias:
            init.zeros_(self.out_proj.bias)

    def forward(self, query: Any, key: Any, value: Any, key_padding_mask: Any = None, need_weights: bool = True,
                attn_mask: Any = None, average_attn_weights: bool = True, is_causal: bool = False) -> tuple:
        q, k, v = float_var(query), float_var(key), float_var(value)
        e, h, hd = self.embed_dim, self.num_heads, self.head_dim
        if q.ndim not in (2, 3) or q.ndim != k.ndim or k.ndim != v.ndim or q.shape[-1] != e or \
                k.shape[-1] != self.kdim or v.shape[-1] != self.vdim:
            raise ValueError(f"MultiheadAttention: query/key/value must all be 2-d or 3-d with last dims "
                             f"{(e, self.kdim, self.vdim)}, got {q.shape}, {k.shape}, {v.shape}")
        unbatched = q.ndim == 2
        if unbatched:
            q, k, v = (F.expand_dims(t, 0) for t in (q, k, v))
            if key_padding_mask is not None:
                key_padding_mask = F.expand_dims(float_var(key_padding_mask), 0)
        elif not self.batch_first:
            q, k, v = (F.swapaxes(t, 0, 1) for t in (q, k, v))
        n, tl, ts = q.shape[0], q.shape[1], k.shape[1]
        b = self.in_proj_bias
        if self._same_dims:
            w = self.in_proj_weight
            wq, wk, wv = w[0:e], w[e:2 * e], w[2 * e:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        qp = F.linear(q, wq, None if b is None else b[0:e])
        kp = F.linear(k, wk, None if b is None else b[e:2 * e])
        vp = F.linear(v, wv, None if b is None else b[2 * e:])

        def heads(t: Var, length: int) -> Var:  # [N, L, E] -> [N, h, L, hd]
            return F.transpose(F.reshape(t, [n, length, h, hd]), [0, 2, 1, 3])

        qh, kh, vh = heads(qp, tl) * (1.0 / math.sqrt(hd)), heads(kp, ts), heads(vp, ts)
        scores = F.matmul(qh, F.swapaxes(kh, -1, -2))  # [N, h, L, S]
        if attn_mask is None and is_causal:
            attn_mask = np.triu(np.ones((tl, ts), dtype=bool), 1)
        if attn_mask is not None:
            am = _mask_add(attn_mask, scores.dtype, "attn_mask")
            if am.ndim == 3:
                if tuple(am.shape) != (n * h, tl, ts):
                    raise ValueError(f"MultiheadAttention: 3-d attn_mask must be {(n * h, tl, ts)}, got {am.shape}")
                am = F.reshape(am, [n, h, tl, ts])
            elif tuple(am.shape) != (tl, ts):
                raise ValueError(f"MultiheadAttention: 2-d attn_mask must be {(tl, ts)}, got {am.shape}")
            scores = scores + am
        if key_padding_mask is not None:
            km = _mask_add(key_padding_mask, scores.dtype, "key_padding_mask")
            if tuple(km.shape) != (n, ts):
                raise ValueError(f"MultiheadAttention: key_padding_mask must be {(n, ts)}, got {km.shape}")
            scores = scores + F.reshape(km, [n, 1, 1, ts])
        attn = F.softmax(scores, -1)
        attn_d = dropout_fn(attn, self.dropout, self.training) if self.dropout else attn
        out = F.matmul(attn_d, vh)  # [N, h, L, hd]
        out = F.reshape(F.transpose(out, [0, 2, 1, 3]), [n, tl, e])
        out = self.out_proj(out)
        weights = None
        if need_weights:
            weights = F.mean(attn, axis=1) if average_attn_weights else attn
        if unbatched:
            out = F.squeeze(out, 0)
            weights = None if weights is None else F.squeeze(weights, 0)
        elif not self.batch_first:
            out = F.swapaxes(out, 0, 1)
        return out, weights

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


class TransformerEncoderLayer(Module):
    """Self-attention + feed-forward block (post-norm, or pre-norm with ``norm_first``), as PyTorch.

    >>> import mnn_expr as F, mnn_nn as nn
    >>> layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    >>> layer(F.ones([2, 5, 8])).shape
    (2, 5, 8)
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: Any = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, dtype: Any = "float32") -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        if isinstance(activation, str):
            if activation not in ("relu", "gelu"):
                raise ValueError(f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a callable, got "
                                 f"{activation!r}")
            self.activation = ReLU() if activation == "relu" else GELU()
        else:
            self.activation = activation

    def _sa(self, x: Var, mask: Any, kpm: Any, is_causal: bool) -> Var:
        y = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=kpm, need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(y)

    def _ff(self, x: Var) -> Var:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src: Any, src_mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool = False) -> Var:
        x = float_var(src)
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff(self.norm2(x))
        else:
            x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff(x))
        return x


class TransformerEncoder(Module):
    """``num_layers`` independent copies of ``encoder_layer`` applied in turn, then ``norm`` (PyTorch's API).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), num_layers=2)
    >>> enc(F.ones([5, 2, 8])).shape
    (5, 2, 8)
    """

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Optional[Module] = None) -> None:
        super().__init__()
        from .container import ModuleList

        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src: Any, mask: Any = None, src_key_padding_mask: Any = None, is_causal: bool = False) -> Var:
        x = float_var(src)
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return x if self.norm is None else self.norm(x)
