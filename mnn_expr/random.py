"""Seedable random numbers: uniform, normal, randint, permutation, bernoulli."""

from __future__ import annotations

__all__: list[str] = []
