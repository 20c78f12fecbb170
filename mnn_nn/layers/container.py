"""Containers: ``Sequential``, ``ModuleList``, ``ModuleDict``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, Optional

from ..module import Module

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


class Sequential(Module):
    """Calls its modules in order, each on the previous output.

    >>> import mnn_expr as F, mnn_nn as nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> net(F.ones([2, 4])).shape, len(net), type(net[1]).__name__
    ((2, 1), 3, 'ReLU')
    """

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (OrderedDict, dict)):
            for name, m in modules[0].items():
                self.add_module(str(name), m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: Any) -> Any:
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        return items[_index(idx, len(items), "Sequential")][1]

    def __setitem__(self, idx: int, module: Module) -> None:
        name = list(self._modules)[_index(idx, len(self), "Sequential")]
        self.add_module(name, module)

    def append(self, module: Module) -> Sequential:
        """Adds ``module`` at the end."""
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x


def _index(idx: Any, n: int, name: str) -> int:
    i = int(idx)
    if not -n <= i < n:
        raise IndexError(f"{name}: index {i} is out of range for {n} modules")
    return i % n


class ModuleList(Module):
    """A list of registered modules.

    >>> import mnn_nn as nn
    >>> ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    >>> len(ml), len(ml.parameters)
    (3, 6)
    """

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __getitem__(self, idx: Any) -> Any:
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[_index(idx, len(mods), "ModuleList")]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(_index(idx, len(self), "ModuleList")), module)

    def append(self, module: Module) -> ModuleList:
        """Adds ``module`` at the end."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Adds each of ``modules``."""
        for m in modules:
            self.append(m)
        return self

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward; iterate over it")


class ModuleDict(Module):
    """A dict of registered modules.

    >>> import mnn_nn as nn
    >>> md = nn.ModuleDict({"a": nn.ReLU(), "b": nn.Tanh()})
    >>> list(md.keys()), type(md["b"]).__name__
    (['a', 'b'], 'Tanh')
    """

    def __init__(self, modules: Optional[Any] = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self) -> list:
        """The names."""
        return list(self._modules.keys())

    def values(self) -> list:
        """The modules."""
        return list(self._modules.values())

    def items(self) -> list:
        """``(name, module)`` pairs."""
        return list(self._modules.items())

    def update(self, modules: Any) -> None:
        """Adds the modules of a dict or of ``(name, module)`` pairs."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for k, m in pairs:
            self.add_module(str(k), m)

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward; index it")
