"""Reductions (sum, mean, prod, max, min, any, all, argmax, argmin, var, std, logsumexp) and cumulative ops."""

from __future__ import annotations

__all__: list[str] = []
