"""Neural-network ops: convolution, pooling, softmax and friends."""

from __future__ import annotations

__all__: list[str] = []
