"""Recurrent layers: ``LSTM`` and ``GRU`` (PyTorch's parameters, gate order and init).

Input ``[T, N, input_size]`` (``batch_first``: ``[N, T, input_size]``; unbatched
``[T, input_size]``).  ``LSTM`` returns ``output, (h_n, c_n)``, ``GRU`` returns
``output, h_n``, with ``h_n`` of shape ``[num_layers * num_directions, N, hidden]``.
Parameters are named ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
``bias_hh_l{k}`` (``_reverse`` for the backward direction), as PyTorch.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import mnn_expr as F
from mnn_expr import Var

from ..module import Module
from ._util import float_var, uniform_param
from .dropout import dropout_fn

__all__ = ["LSTM", "GRU"]


class _RNNBase(Module):
    _gates = 1
    _name = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = "float32") -> None:
        super().__init__()
        if num_layers < 1 or hidden_size < 1:
            raise ValueError(f"{self._name}: num_layers and hidden_size must be positive")
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        ndir = 2 if bidirectional else 1
        bound = 1.0 / math.sqrt(hidden_size)
        g = self._gates * hidden_size
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size * ndir
            for d in range(ndir):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                setattr(self, "weight_ih" + sfx, uniform_param((g, in_size), bound, dtype))
                setattr(self, "weight_hh" + sfx, uniform_param((g, hidden_size), bound, dtype))
                if bias:
                    setattr(self, "bias_ih" + sfx, uniform_param((g,), bound, dtype))
                    setattr(self, "bias_hh" + sfx, uniform_param((g,), bound, dtype))

    def _weights(self, layer: int, d: int) -> tuple:
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        return (getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx),
                getattr(self, "bias_ih" + sfx) if self.bias else None,
                getattr(self, "bias_hh" + sfx) if self.bias else None)

    def _cell(self, xw: Var, state: tuple, w_hh: Var, b_hh: Optional[Var]) -> tuple:
        raise NotImplementedError

    def _run(self, x: Any, hx: Any, has_c: bool) -> tuple:
        x = float_var(x)
        name = self._name
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input [T, N, {self.input_size}] (or unbatched [T, "
                             f"{self.input_size}]), got shape {x.shape}")
        unbatched = x.ndim == 2
        if unbatched:
            x = F.expand_dims(x, 1)
        elif self.batch_first:
            x = F.swapaxes(x, 0, 1)
        t_len, n = x.shape[0], x.shape[1]
        ndir = 2 if self.bidirectional else 1
        hshape = (self.num_layers * ndir, n, self.hidden_size)
        h0, c0 = (hx if has_c else (hx, None)) if hx is not None else (None, None)

        def _state(s: Any, what: str) -> Var:
            if s is None:
                return F.zeros(list(hshape), x.dtype)
            s = float_var(s)
            if unbatched:
                s = F.expand_dims(s, 1)
            if tuple(s.shape) != hshape:
                raise ValueError(f"{name}: expected {what} of shape {hshape}, got {tuple(s.shape)}")
            return s

        h0 = _state(h0, "h0")
        c0 = _state(c0, "c0") if has_c else None
        hs, cs = [], []
        inp = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(ndir):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, d)
                xw = F.linear(inp, w_ih, b_ih)  # [T, N, G]
                k = layer * ndir + d
                state = (h0[k], c0[k]) if has_c else (h0[k],)
                steps = range(t_len - 1, -1, -1) if d else range(t_len)
                seq: list = [None] * t_len
                for t in steps:
                    state = self._cell(xw[t], state, w_hh, b_hh)
                    seq[t] = state[0]
                hs.append(state[0])
                if has_c:
                    cs.append(state[1])
                outs.append(F.stack(seq, axis=0) if t_len else F.zeros([0, n, self.hidden_size], x.dtype))
            inp = outs[0] if ndir == 1 else F.concatenate(outs, axis=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                inp = dropout_fn(inp, self.dropout, True)
        out = inp
        h_n = F.stack(hs, axis=0)
        c_n = F.stack(cs, axis=0) if has_c else None
        if unbatched:
            out, h_n = F.squeeze(out, 1), F.squeeze(h_n, 1)
            c_n = F.squeeze(c_n, 1) if has_c else None
        elif self.batch_first:
            out = F.swapaxes(out, 0, 1)
        return out, h_n, c_n

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class LSTM(_RNNBase):
    """Long short-term memory (gates i, f, g, o, as PyTorch).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> out, (h, c) = nn.LSTM(3, 5, num_layers=2)(F.ones([7, 2, 3]))
    >>> out.shape, h.shape, c.shape
    ((7, 2, 5), (2, 2, 5), (2, 2, 5))
    """

    _gates = 4
    _name = "LSTM"

    def _cell(self, xw: Var, state: tuple, w_hh: Var, b_hh: Optional[Var]) -> tuple:
        h, c = state
        g = xw + F.linear(h, w_hh, b_hh)
        hs = self.hidden_size
        i = F.sigmoid(g[:, 0:hs])
        f = F.sigmoid(g[:, hs:2 * hs])
        gg = F.tanh(g[:, 2 * hs:3 * hs])
        o = F.sigmoid(g[:, 3 * hs:])
        c = f * c + i * gg
        return o * F.tanh(c), c

    def forward(self, x: Any, hx: Any = None) -> tuple:
        out, h, c = self._run(x, hx, True)
        return out, (h, c)


class GRU(_RNNBase):
    """Gated recurrent unit (gates r, z, n, as PyTorch).

    >>> import mnn_expr as F, mnn_nn as nn
    >>> out, h = nn.GRU(3, 4, batch_first=True)(F.ones([2, 6, 3]))
    >>> out.shape, h.shape
    ((2, 6, 4), (1, 2, 4))
    """

    _gates = 3
    _name = "GRU"

    def _cell(self, xw: Var, state: tuple, w_hh: Var, b_hh: Optional[Var]) -> tuple:
        (h,) = state
        hw = F.linear(h, w_hh, b_hh)
        hs = self.hidden_size
        r = F.sigmoid(xw[:, 0:hs] + hw[:, 0:hs])
        z = F.sigmoid(xw[:, hs:2 * hs] + hw[:, hs:2 * hs])
        nn_ = F.tanh(xw[:, 2 * hs:] + r * hw[:, 2 * hs:])
        return ((1.0 - z) * nn_ + z * h,)

    def forward(self, x: Any, hx: Any = None) -> tuple:
        out, h, _ = self._run(x, hx, False)
        return out, h
