"""MNN's ``expr.save`` / ``load_as_list`` / ``load_as_dict`` on our ``.mnnx`` format.

They live with the format in ``mnn_nn.deploy.mnnx`` (imported on first use: ``mnn_nn``
builds on ``mnn_expr``); see there for details.

>>> import os, tempfile, mnn_expr as F
>>> path = os.path.join(tempfile.mkdtemp(), "w.mnnx")
>>> w = F.array([1.0, 2.0]); w.name = "w"
>>> F.save([w], path)
>>> F.load_as_dict(path)["w"].tolist()
[1.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["save", "load_as_list", "load_as_dict"]


def save(vars: Sequence[Any], fileName: Any, forInference: bool = True) -> None:  # noqa: A002, N803 (MNN's names)
    """Writes the graph that computes ``vars`` (from the placeholders they read) as ``.mnnx``."""
    from mnn_nn.deploy import mnnx
    mnnx.save(vars, fileName, forInference)


def load_as_list(fileName: Any) -> list:  # noqa: N803
    """The outputs of an ``.mnnx`` file as Vars."""
    from mnn_nn.deploy import mnnx
    return mnnx.load_as_list(fileName)


def load_as_dict(fileName: Any) -> dict:  # noqa: N803
    """``{name: Var}`` for the inputs (placeholders) and outputs of an ``.mnnx`` file."""
    from mnn_nn.deploy import mnnx
    return mnnx.load_as_dict(fileName)
