"""ONNX op handlers for recurrent layers: LSTM, GRU and RNN, unrolled over time.

Per direction, one matmul projects every time step's input; each step then adds one
matmul of the hidden state and the gate activations (ONNX's ``activations``,
``activation_alpha`` / ``activation_beta``, ``clip``, peepholes, ``input_forget``,
``linear_before_reset``, ``layout``).  ``sequence_lens`` masks steps past each
sequence's end (states stop updating, outputs are zero), so nothing is read.

>>> from mnn_nn.deploy.onnx_import import SUPPORTED_OPS
>>> {"LSTM", "GRU", "RNN"} <= SUPPORTED_OPS
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import numpy as np

import mnn_expr as F
from mnn_expr import Var

from .onnx_import import NodeCall, register
from .onnx_ops import const, prim, reshape, scalar_like


def _act(name: str, alpha: Optional[float], beta: Optional[float]) -> Callable[[Var], Var]:
    key = name.lower()
    if key == "sigmoid":
        return F.sigmoid
    if key == "tanh":
        return F.tanh
    if key == "relu":
        return F.relu
    if key == "affine":
        return lambda v: v * (1.0 if alpha is None else alpha) + (0.0 if beta is None else beta)
    if key == "leakyrelu":
        al = 0.01 if alpha is None else alpha
        return lambda v: F.where(v < 0, v * al, v)
    if key == "thresholdedrelu":
        al = 1.0 if alpha is None else alpha
        return lambda v: F.where(v > al, v, scalar_like(0, v))
    if key == "scaledtanh":
        return lambda v: F.tanh(v * (1.0 if beta is None else beta)) * (1.0 if alpha is None else alpha)
    if key == "hardsigmoid":
        return lambda v: F.clip(v * (0.2 if alpha is None else alpha) + (0.5 if beta is None else beta), 0.0, 1.0)
    if key == "elu":
        al = 1.0 if alpha is None else alpha
        return lambda v: F.where(v < 0, F.expm1(v) * al, v)
    if key == "softsign":
        return F.softsign
    if key == "softplus":
        return F.softplus
    raise NotImplementedError(f"recurrent activation {name!r} is not supported")


_TAKES_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
_TAKES_BETA = {"affine", "scaledtanh", "hardsigmoid"}


def _activations(n: NodeCall, defaults: list, n_dirs: int) -> list:
    names = n.attr("activations") or defaults * n_dirs
    if len(names) == len(defaults) and n_dirs == 2:
        names = names * 2
    alphas = list(n.attr("activation_alpha") or [])
    betas = list(n.attr("activation_beta") or [])
    fns = []
    for name in names:
        key = name.lower()
        a = alphas.pop(0) if key in _TAKES_ALPHA and alphas else None
        b = betas.pop(0) if key in _TAKES_BETA and betas else None
        fns.append(_act(name, a, b))
    k = len(defaults)
    return [fns[i * k:(i + 1) * k] for i in range(n_dirs)]


def _part(v: Var, axis: int, i: int, size: int) -> Var:
    """The i-th block of ``size`` along ``axis``."""
    begins = [0] * v.ndim
    ends = list(v.shape)
    begins[axis], ends[axis] = i * size, (i + 1) * size
    return prim("slice", [v], begins=begins, ends=ends, steps=[1] * v.ndim)


def _dir(v: Optional[Var], d: int) -> Optional[Var]:
    """``v[d]`` for a [num_directions, ...] input."""
    if v is None:
        return None
    return reshape(_part(v, 0, d, 1), list(v.shape[1:]))


def _rnn_common(n: NodeCall, gates: int, defaults: list) -> tuple:
    x = n.x(0)
    layout = n.attr("layout", 0)
    if layout:
        x = F.transpose(x, [1, 0, 2])
    direction = n.attr("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise n.error(f"unknown direction {direction!r}")
    n_dirs = 2 if direction == "bidirectional" else 1
    hidden = n.attr("hidden_size") or n.x(2).shape[-1]
    T, B = x.shape[:2]
    acts = _activations(n, defaults, n_dirs)
    lens = n.x(4)
    h0 = n.x(5)
    if h0 is not None and layout:
        h0 = F.transpose(h0, [1, 0, 2])
    clip = n.attr("clip")
    return x, layout, direction, n_dirs, hidden, T, B, acts, lens, h0, clip


def _clipped(v: Var, clip: Optional[float]) -> Var:
    return v if clip is None else F.clip(v, -clip, clip)


def _step_mask(lens: Optional[Var], t: int) -> Optional[Var]:
    """[B, 1] bool: does step ``t`` lie within each sequence (None when every sequence is full length)."""
    if lens is None:
        return None
    return reshape(F.greater(F.cast(lens, "int64"), t), [-1, 1])


def _finish(n: NodeCall, ys: list, hs: list, cs: Optional[list], layout: int) -> list:
    y = F.stack(ys, axis=1)  # [T, D, B, H]
    yh = F.stack(hs, axis=0)  # [D, B, H]
    yc = F.stack(cs, axis=0) if cs else None
    if layout:
        y = F.transpose(y, [2, 0, 1, 3])
        yh = F.transpose(yh, [1, 0, 2])
        yc = None if yc is None else F.transpose(yc, [1, 0, 2])
    return [y, yh] + ([yc] if yc is not None else [])


def _time_order(direction: str, d: int, T: int) -> range:
    reverse = direction == "reverse" or (direction == "bidirectional" and d == 1)
    return range(T - 1, -1, -1) if reverse else range(T)


@register("LSTM")
def _lstm(n: NodeCall) -> list:
    x, layout, direction, n_dirs, H, T, B, acts, lens, h0, clip = _rnn_common(n, 4, ["Sigmoid", "Tanh", "Tanh"])
    c0 = n.x(6)
    if c0 is not None and layout:
        c0 = F.transpose(c0, [1, 0, 2])
    coupled = bool(n.attr("input_forget", 0))
    ys, hs, cs = [], [], []
    for d in range(n_dirs):
        f_act, g_act, h_act = acts[d]
        w, r, bias, peep = _dir(n.x(1), d), _dir(n.x(2), d), _dir(n.x(3), d), _dir(n.x(7), d)
        xw = prim("matmul", [x, w], transpose_a=False, transpose_b=True)  # [T, B, 4H]
        if bias is not None:
            xw = xw + (_part(bias, 0, 0, 4 * H) + _part(bias, 0, 1, 4 * H))
        h = _dir(h0, d) if h0 is not None else const(np.zeros((B, H)), x.dtype.name)
        c = _dir(c0, d) if c0 is not None else const(np.zeros((B, H)), x.dtype.name)
        pi, po, pf = ((_part(peep, 0, k, H) for k in range(3)) if peep is not None else (None, None, None))
        out = [None] * T
        for t in _time_order(direction, d, T):
            g = reshape(_part(xw, 0, t, 1), [B, 4 * H]) + prim("matmul", [h, r], transpose_a=False, transpose_b=True)
            gi, go, gf, gc = (_part(g, 1, k, H) for k in range(4))
            if pi is not None:
                gi, gf = gi + pi * c, gf + pf * c
            i_t = f_act(_clipped(gi, clip))
            f_t = (1 - i_t) if coupled else f_act(_clipped(gf, clip))
            c_new = f_t * c + i_t * g_act(_clipped(gc, clip))
            if po is not None:
                go = go + po * c_new
            o_t = f_act(_clipped(go, clip))
            h_new = o_t * h_act(c_new)
            m = _step_mask(lens, t)
            if m is not None:
                h_new, c_new = F.where(m, h_new, h), F.where(m, c_new, c)
                out[t] = F.where(m, h_new, scalar_like(0, h_new))
            else:
                out[t] = h_new
            h, c = h_new, c_new
        ys.append(F.stack(out, axis=0))
        hs.append(h)
        cs.append(c)
    return _finish(n, ys, hs, cs, layout)


@register("GRU")
def _gru(n: NodeCall) -> list:
    x, layout, direction, n_dirs, H, T, B, acts, lens, h0, clip = _rnn_common(n, 3, ["Sigmoid", "Tanh"])
    lbr = bool(n.attr("linear_before_reset", 0))
    ys, hs = [], []
    for d in range(n_dirs):
        f_act, g_act = acts[d]
        w, r, bias = _dir(n.x(1), d), _dir(n.x(2), d), _dir(n.x(3), d)
        xw = prim("matmul", [x, w], transpose_a=False, transpose_b=True)  # [T, B, 3H]
        rb = None
        if bias is not None:
            xw = xw + _part(bias, 0, 0, 3 * H)
            rb = _part(bias, 0, 1, 3 * H)
        r_zr, r_h = _part(r, 0, 0, 2 * H), _part(r, 0, 2, H)
        h = _dir(h0, d) if h0 is not None else const(np.zeros((B, H)), x.dtype.name)
        out = [None] * T
        for t in _time_order(direction, d, T):
            xt = reshape(_part(xw, 0, t, 1), [B, 3 * H])
            if lbr:
                hr = prim("matmul", [h, r], transpose_a=False, transpose_b=True)
                if rb is not None:
                    hr = hr + rb
                hz, hrr, hh = (_part(hr, 1, k, H) for k in range(3))
            else:
                hzr = prim("matmul", [h, r_zr], transpose_a=False, transpose_b=True)
                if rb is not None:
                    hzr = hzr + _part(rb, 0, 0, 2 * H)
                hz, hrr = _part(hzr, 1, 0, H), _part(hzr, 1, 1, H)
            z = f_act(_clipped(_part(xt, 1, 0, H) + hz, clip))
            rr = f_act(_clipped(_part(xt, 1, 1, H) + hrr, clip))
            if lbr:
                pre = _part(xt, 1, 2, H) + rr * hh
            else:
                pre = _part(xt, 1, 2, H) + prim("matmul", [rr * h, r_h], transpose_a=False, transpose_b=True)
                if rb is not None:
                    pre = pre + _part(rb, 0, 2, H)
            hh_t = g_act(_clipped(pre, clip))
            h_new = (1 - z) * hh_t + z * h
            m = _step_mask(lens, t)
            if m is not None:
                h_new = F.where(m, h_new, h)
                out[t] = F.where(m, h_new, scalar_like(0, h_new))
            else:
                out[t] = h_new
            h = h_new
        ys.append(F.stack(out, axis=0))
        hs.append(h)
    return _finish(n, ys, hs, None, layout)


@register("RNN")
def _rnn(n: NodeCall) -> list:
    x, layout, direction, n_dirs, H, T, B, acts, lens, h0, clip = _rnn_common(n, 1, ["Tanh"])
    ys, hs = [], []
    for d in range(n_dirs):
        (f_act,) = acts[d]
        w, r, bias = _dir(n.x(1), d), _dir(n.x(2), d), _dir(n.x(3), d)
        xw = prim("matmul", [x, w], transpose_a=False, transpose_b=True)
        if bias is not None:
            xw = xw + (_part(bias, 0, 0, H) + _part(bias, 0, 1, H))
        h = _dir(h0, d) if h0 is not None else const(np.zeros((B, H)), x.dtype.name)
        out = [None] * T
        for t in _time_order(direction, d, T):
            pre = reshape(_part(xw, 0, t, 1), [B, H]) + prim("matmul", [h, r], transpose_a=False, transpose_b=True)
            h_new = f_act(_clipped(pre, clip))
            m = _step_mask(lens, t)
            if m is not None:
                h_new = F.where(m, h_new, h)
                out[t] = F.where(m, h_new, scalar_like(0, h_new))
            else:
                out[t] = h_new
            h = h_new
        ys.append(F.stack(out, axis=0))
        hs.append(h)
    return _finish(n, ys, hs, None, layout)
