"""Gather/scatter with tensor indices and NumPy indexing (x[...], x[...] = v) on Vars."""

from __future__ import annotations

__all__: list[str] = []
