"""Deployment: trace models into graphs, our ``.mnnx`` model format, ONNX export and import.

- ``graph``: :func:`trace` turns a Module or function plus example inputs into a
  :class:`Graph` (nodes of primitives from the op table, constants, named inputs/outputs).
"""
