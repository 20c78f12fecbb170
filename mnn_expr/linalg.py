"""Linear algebra: matmul, dot, tensordot, einsum."""

from __future__ import annotations

__all__: list[str] = []
