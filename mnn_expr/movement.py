"""Movement ops: reshape, transpose, slicing, broadcasting, concatenation, padding, tiling, flipping (lowered natively to raster regions)."""

from __future__ import annotations

__all__: list[str] = []
