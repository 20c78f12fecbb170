"""``Module``: the base class of layers and models (PyTorch's API with MNN's names as aliases).

A Module registers what is assigned to its attributes:

- a ``Var`` that is trainable (``requires_grad`` true, e.g. made by
  ``fix_as_trainable()``) becomes a **parameter**;
- a ``Module`` becomes a **child**;
- :meth:`Module.register_buffer` registers non-trainable state (BatchNorm's
  running statistics) that is saved in :meth:`Module.state_dict`.

``parameters`` works in both styles: MNN reads ``model.parameters`` as a list
property, PyTorch calls ``model.parameters()``.  The attribute is a
:class:`CallableParameterList` — a ``list`` of the parameter Vars that is also callable
(``model.parameters()`` / ``model.parameters(recurse=False)`` return lists).

Updating a parameter in place (what optimisers do) is ``p._rebind(new_value)``:
every holder of ``p`` then sees the new value.

>>> import mnn_expr as F, mnn_nn as nn
>>> class Net(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.fc = nn.Linear(3, 2)
...     def forward(self, x):
...         return self.fc(x)
>>> net = Net()
>>> [name for name, _ in net.named_parameters()]
['fc.weight', 'fc.bias']
>>> len(net.parameters), len(net.parameters())
(2, 2)
>>> net(F.ones([4, 3])).shape
(4, 2)
"""

from __future__ import annotations

import copy
import os
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Optional

import numpy as np

import mnn_expr as F
from mnn_expr import Var

__all__ = ["Module", "CallableParameterList", "Parameter", "is_parameter", "save_state", "load_state"]


def is_parameter(v: Any) -> bool:
    """True for a trainable Var (``requires_grad`` set)."""
    return isinstance(v, Var) and bool(getattr(v, "requires_grad", False))


def Parameter(value: Any, dtype: Any = None, requires_grad: bool = True) -> Var:  # noqa: N802  (torch's name)
    """A new trainable Var holding a copy of ``value`` (``F.array(value, dtype)`` + ``fix_as_trainable()``).

    >>> import mnn_nn as nn
    >>> p = nn.Parameter([1.0, 2.0])
    >>> p.requires_grad, p.op_type
    (True, 'Trainable')
    """
    if isinstance(value, Var):
        value = value.read()
    v = F.array(np.asarray(value), dtype)
    if requires_grad:
        v.fix_as_trainable()
    return v


class CallableParameterList(list):
    """A list of parameter Vars that can also be called (``m.parameters`` == ``m.parameters()``).

    ``m.parameters(recurse=False)`` lists only the module's own parameters.
    """

    def __init__(self, module: Module, items: list) -> None:
        super().__init__(items)
        self._module = module

    def __call__(self, recurse: bool = True) -> list:
        """The parameters as a plain list (``recurse=False``: the module's own only)."""
        if recurse:
            return list(self)
        return list(self._module._parameters.values())


def _shape_str(shape: tuple) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


class Module:
    """Base class of all layers and models; subclasses define :meth:`forward`.

    >>> import mnn_nn as nn
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    >>> m.training, m.eval().training, m[0].training
    (True, False, False)
    """

    _parameters: OrderedDict[str, Var]
    _buffers: OrderedDict[str, Optional[Var]]
    _modules: OrderedDict[str, Optional[Module]]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "name", "")

    # ---- registration --------------------------------------------------------------------

    def _check_init(self) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")

    def __setattr__(self, key: str, value: Any) -> None:
        if key in ("_parameters", "_buffers", "_modules", "_non_persistent"):
            object.__setattr__(self, key, value)
            return
        d = self.__dict__
        if isinstance(value, Module):
            self._check_init()
            self._remove(key)
            self._modules[key] = value
            if not value.name:
                value.name = key
        elif is_parameter(value):
            self._check_init()
            self._remove(key)
            self._parameters[key] = value
        elif "_buffers" in d and key in self._buffers:
            if value is not None and not isinstance(value, Var):
                value = F.asarray(value)
            self._buffers[key] = value
        elif "_parameters" in d and key in self._parameters:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} that is not "
                                f"trainable to parameter '{key}' (use nn.Parameter(...), or "
                                f"{key}._rebind(new_value) to change its value in place)")
            self._parameters[key] = None  # type: ignore[assignment]
        elif "_modules" in d and key in self._modules and value is None:
            self._modules[key] = None
        else:
            if "_parameters" in d:
                self._remove(key)
            object.__setattr__(self, key, value)

    def _remove(self, key: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(key, None)
        self._non_persistent.discard(key)
        self.__dict__.pop(key, None)

    def __getattr__(self, key: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and key in d[store]:
                return d[store][key]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{key}'")

    def __delattr__(self, key: str) -> None:
        if key in self._parameters or key in self._buffers or key in self._modules:
            self._remove(key)
        else:
            object.__delattr__(self, key)

    def register_parameter(self, name: str, param: Optional[Var]) -> None:
        """Registers ``param`` (a Var, made trainable if it is not; or None) under ``name``."""
        self._check_init()
        if param is not None:
            if not isinstance(param, Var):
                raise TypeError(f"register_parameter: '{name}' must be a Var or None, got {type(param).__name__}")
            if not is_parameter(param):
                param.fix_as_trainable()
        self._remove(name)
        self._parameters[name] = param  # type: ignore[assignment]

    def register_buffer(self, name: str, value: Any, persistent: bool = True) -> None:
        """Registers non-trainable state (saved in :meth:`state_dict` unless ``persistent=False``).

        >>> import mnn_expr as F, mnn_nn as nn
        >>> m = nn.Module(); m.register_buffer("count", F.zeros([1]))
        >>> list(m.state_dict())
        ['count']
        """
        self._check_init()
        if value is not None and not isinstance(value, Var):
            value = F.asarray(value)
        self._remove(name)
        self._buffers[name] = value
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Optional[Module]) -> None:
        """Registers ``module`` as a child named ``name``."""
        self._check_init()
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module or None, got {type(module).__name__}")
        self._remove(name)
        self._modules[name] = module
        if module is not None and not module.name:
            module.name = name

    register_module = add_module

    def _add_parameter(self, v: Var) -> int:
        """MNN: registers ``v`` under the next free name ``_p{i}``; returns the previous count."""
        n = len(self._parameters)
        self.register_parameter(f"_p{n}", v)
        return n

    def _register_submodules(self, modules: list) -> None:
        """MNN: registers each module under the next free name."""
        for m in modules:
            self.add_module(f"_m{len(self._modules)}", m)

    # ---- recursion -------------------------------------------------------------------------

    def named_modules(self, memo: Optional[set] = None, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for this module and every descendant (each module once)."""
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        """This module and every descendant."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """``(name, child)`` for the direct children."""
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        """The direct children."""
        for _, m in self.named_children():
            yield m

    def _named(self, store: str, recurse: bool, prefix: str = "") -> Iterator[tuple[str, Var]]:
        seen: set = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, v in getattr(m, store).items():
                if v is None or id(v) in seen:
                    continue
                seen.add(id(v))
                yield (f"{mp}.{name}" if mp else name), v

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Var]]:
        """``(dotted name, parameter)`` pairs, each parameter once."""
        return self._named("_parameters", recurse, prefix)

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Var]]:
        """``(dotted name, buffer)`` pairs."""
        return self._named("_buffers", recurse, prefix)

    @property
    def parameters(self) -> CallableParameterList:
        """All parameters: a list (MNN's property) that is also callable (PyTorch's method)."""
        return CallableParameterList(self, [p for _, p in self.named_parameters()])

    def buffers(self, recurse: bool = True) -> list:
        """All buffers as a list."""
        return [b for _, b in self.named_buffers(recurse=recurse)]

    # ---- modes -----------------------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Sets training mode on this module and its descendants (MNN: ``train(bool)``); returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """``train(False)``."""
        return self.train(False)

    @property
    def is_training(self) -> bool:
        """MNN's name of :attr:`training`."""
        return self.training

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Sets ``requires_grad`` on every parameter (they stay registered as parameters)."""
        for p in self.parameters:
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears ``.grad`` of every parameter (where the Var carries one)."""
        for p in self.parameters:
            if hasattr(p, "grad"):
                try:
                    p.grad = None
                except (AttributeError, TypeError):
                    pass

    # ---- state -----------------------------------------------------------------------------

    def state_dict(self, prefix: str = "") -> OrderedDict[str, np.ndarray]:
        """Ordered ``name -> numpy array`` (copies) of every parameter and persistent buffer.

        >>> import mnn_nn as nn
        >>> list(nn.BatchNorm1d(3).state_dict())
        ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
        """
        out: OrderedDict = OrderedDict()
        for mp, m in self.named_modules(prefix=prefix):
            for name, v in m._parameters.items():
                if v is not None:
                    out[f"{mp}.{name}" if mp else name] = np.array(v.read(), copy=True)
            for name, v in m._buffers.items():
                if v is not None and name not in m._non_persistent:
                    out[f"{mp}.{name}" if mp else name] = np.array(v.read(), copy=True)
        return out

    def _state_vars(self) -> OrderedDict[str, tuple[Module, str, Var, bool]]:
        out: OrderedDict = OrderedDict()
        for mp, m in self.named_modules():
            for name, v in m._parameters.items():
                if v is not None:
                    out[f"{mp}.{name}" if mp else name] = (m, name, v, True)
            for name, v in m._buffers.items():
                if v is not None and name not in m._non_persistent:
                    out[f"{mp}.{name}" if mp else name] = (m, name, v, False)
        return out

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> tuple[list, list]:
        """Copies values from ``state_dict`` (name -> array or Var) into the parameters and buffers.

        Every shape and dtype must match (ValueError / TypeError naming the entry).
        With ``strict`` missing or unexpected names raise KeyError; otherwise they are
        returned as ``(missing_keys, unexpected_keys)``.  Values are copied in place
        (``_rebind``), so optimisers holding the parameters see them.
        """
        targets = self._state_vars()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict for {type(self).__name__}: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        staged = []
        for k, (_m, _name, v, is_param) in targets.items():
            if k not in state_dict:
                continue
            val = state_dict[k]
            arr = val.read() if isinstance(val, Var) else np.asarray(val)
            if tuple(arr.shape) != tuple(v.shape):
                raise ValueError(f"load_state_dict: '{k}' has shape {tuple(arr.shape)} in the state dict, "
                                 f"but the module expects {tuple(v.shape)}")
            want = v.dtype.numpy
            got = val.dtype.numpy if isinstance(val, Var) else arr.dtype
            if np.dtype(got) != np.dtype(want):
                raise TypeError(f"load_state_dict: '{k}' has dtype {np.dtype(got)} in the state dict, "
                                f"but the module expects {np.dtype(want)}")
            staged.append((v, arr, is_param))
        for v, arr, is_param in staged:
            _assign(v, arr, is_param)
        return missing, unexpected

    def save(self, path: Any) -> None:
        """Writes :meth:`state_dict` to ``path`` (an ``.npz`` zip of ``.npy`` arrays plus a format version).

        The file is written to a temporary name in the same folder, flushed to disk and
        then renamed over ``path``, so an interrupted save leaves any previous file intact.

        >>> import os, tempfile, mnn_nn as nn
        >>> m = nn.Linear(2, 2); path = os.path.join(tempfile.mkdtemp(), "m.npz")
        >>> m.save(path); nn.Linear(2, 2).load(path).state_dict()["bias"].tolist() == m.bias.tolist()
        True
        """
        save_state(self.state_dict(), path)

    def load(self, path: Any, strict: bool = True) -> Module:
        """Loads a file written by :meth:`save` (names, shapes and dtypes checked); returns self."""
        self.load_state_dict(load_state(path), strict=strict)
        return self

    def load_parameters(self, values: list) -> bool:
        """MNN: loads a list of Vars/arrays into :attr:`parameters` in order; returns True.

        The count, shapes and dtypes must match (ValueError / TypeError otherwise).
        """
        params = self.parameters
        if len(values) != len(params):
            raise ValueError(f"load_parameters: got {len(values)} values for {len(params)} parameters")
        staged = []
        for i, (p, val) in enumerate(zip(params, values)):
            arr = val.read() if isinstance(val, Var) else np.asarray(val)
            if tuple(arr.shape) != tuple(p.shape):
                raise ValueError(f"load_parameters: value {i} has shape {tuple(arr.shape)}, parameter has "
                                 f"{tuple(p.shape)}")
            if arr.dtype != p.dtype.numpy and not (isinstance(val, Var) and val.dtype == p.dtype):
                raise TypeError(f"load_parameters: value {i} has dtype {arr.dtype}, parameter has {p.dtype}")
            staged.append((p, arr))
        for p, arr in staged:
            _assign(p, arr, True)
        return True

    # ---- calling ---------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not defined")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def onForward(self, inputs: list) -> list:  # noqa: N802  (MNN's name)
        """MNN: multi-input forward; returns a list."""
        out = self.forward(*inputs)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def set_name(self, name: str) -> None:
        """MNN: sets :attr:`name`."""
        self.name = name

    def apply(self, fn: Any) -> Module:
        """Calls ``fn(m)`` on every descendant (children first) and this module; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- copies and dtypes ---------------------------------------------------------------

    def __deepcopy__(self, memo: dict) -> Module:
        """An independent copy: every parameter and buffer Var is copied (shared ones stay shared)."""
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            object.__setattr__(new, k, _deep(v, memo))
        return new

    def to(self, dtype: Any) -> Module:
        """Casts every floating parameter and buffer to ``dtype`` in place (the same Vars); returns self.

        >>> import mnn_nn as nn
        >>> nn.Linear(2, 2).to("float64").weight.dtype.name
        'float64'
        """
        dt = F.as_dtype(dtype)
        if not dt.is_floating:
            raise TypeError(f"Module.to: dtype must be floating, got {dt}")
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for v in store.values():
                    if v is not None and v.dtype.is_floating and v.dtype != dt:
                        rg = bool(getattr(v, "requires_grad", False))
                        trainable = v.op_type == "Trainable"
                        v._rebind(F.array(np.asarray(v.read()), dt))
                        if trainable:
                            v.fix_as_trainable()
                            v.requires_grad = rg
        return self

    def float(self) -> Module:
        """``to("float32")``."""
        return self.to("float32")

    def double(self) -> Module:
        """``to("float64")``."""
        return self.to("float64")

    # ---- printing --------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The layer's settings shown inside its repr."""
        return ""

    def num_parameters(self) -> int:
        """Total number of parameter elements."""
        return int(sum(int(np.prod(p.shape)) for p in self.parameters))

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        own = [f"{n}: {_shape_str(tuple(p.shape))}" for n, p in self._parameters.items() if p is not None]
        n = self.num_parameters()
        tail = f"  # {n} parameters" if n and (lines or not own) else ""
        if own and not lines:
            tail = f"  # {', '.join(own)}"
        if not lines:
            return head + ")" + tail
        return head + "\n  " + "\n  ".join(lines) + "\n)" + tail


FORMAT_KEY = "__mnn_nn_format__"
FORMAT_VERSION = 1


def save_state(state: Any, path: Any) -> None:
    """Writes ``name -> array`` ``state`` atomically to ``path`` as ``.npz`` with a format version."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    arrays = [(FORMAT_KEY, np.array(FORMAT_VERSION, np.int64))]
    for k, v in state.items():
        if k == FORMAT_KEY:
            raise ValueError(f"save: the name {FORMAT_KEY!r} is reserved")
        arrays.append((k, np.array(v.read() if isinstance(v, Var) else v, order="C")))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for k, a in arrays:
                    with zf.open(k + ".npy", "w", force_zip64=True) as fh:
                        np.lib.format.write_array(fh, a, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_state(path: Any) -> OrderedDict:
    """Reads a file written by :func:`save_state` (checks the format version)."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        names = list(z.files)
        if FORMAT_KEY not in names:
            raise ValueError(f"load: {path} is not an mnn_nn checkpoint (no {FORMAT_KEY!r} entry)")
        version = int(z[FORMAT_KEY])
        if version > FORMAT_VERSION:
            raise ValueError(f"load: {path} has format version {version}; this mnn_nn reads up to "
                             f"{FORMAT_VERSION}")
        return OrderedDict((k, z[k]) for k in names if k != FORMAT_KEY)


def _copy_var(v: Var) -> Var:
    new = F.array(np.array(v.read(), copy=True), v.dtype)
    if v.op_type == "Trainable":
        new.fix_as_trainable()
        new.requires_grad = bool(getattr(v, "requires_grad", False))
    return new


def _deep(v: Any, memo: dict) -> Any:
    if id(v) in memo:
        return memo[id(v)]
    if isinstance(v, Var):
        out: Any = _copy_var(v)
    elif isinstance(v, dict):
        out = type(v)()
        memo[id(v)] = out
        for k, x in v.items():
            out[k] = _deep(x, memo)
        return out
    elif isinstance(v, (list, tuple)) and type(v) in (list, tuple):
        out = type(v)(_deep(x, memo) for x in v)
    else:
        return copy.deepcopy(v, memo)
    memo[id(v)] = out
    return out


def _assign(v: Var, arr: np.ndarray, trainable: bool) -> None:
    """Gives Var ``v`` a copy of ``arr`` in place, keeping it a parameter if it was one."""
    rg = bool(getattr(v, "requires_grad", False))
    new = F.array(np.array(arr, copy=True), v.dtype)
    v._rebind(new)
    if trainable:
        v.fix_as_trainable()
        if not rg:
            v.requires_grad = False
