"""The ``mnnpy`` command line: ``mnnpy convert model.onnx model.mnnx`` and ``mnnpy info model.mnnx``.

``convert`` imports an ONNX model (:func:`~mnn_nn.deploy.onnx_import.load_onnx`), traces it on
example inputs and writes it as ``.mnnx`` for ``mnnx-run`` and the C++ runtime.  Dynamic
dims of the ONNX inputs stay dynamic where the graph allows it (a reshape to a size baked
into the ONNX file does not); ``--shape name=1x3x224x224`` sets the example size of an
input (dynamic dims default to 1), ``--static`` fixes every dim at the example size.

>>> main(["convert", "--help"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
SystemExit: 0
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

__all__ = ["main", "convert"]


def _dims(text: str) -> list:
    try:
        return [int(d) for d in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad dims {text!r} (expected e.g. 1x3x224x224)") from None


def convert(onnx_path: str, out_path: str, shapes: Optional[dict] = None, static: bool = False,
            weights: str = "float32") -> dict:
    """Converts an ONNX file to ``.mnnx``; returns a summary (inputs, dynamic axes, node count).

    ``shapes``: ``{input_name: [dims]}`` example sizes (dynamic dims default to 1)."""
    import mnn_expr as F

    from .mnnx import export
    from .onnx_import import load_onnx

    model = load_onnx(onnx_path)
    shapes = dict(shapes or {})
    unknown = set(shapes) - set(model.input_names)
    if unknown:
        raise ValueError(f"convert: --shape names {sorted(unknown)}, which are not inputs of the model "
                         f"({model.input_names})")
    examples, dynamic = [], {}
    for name, shape, dtype in zip(model.input_names, model.input_shapes, model.input_dtypes):
        if shape is None and name not in shapes:
            raise ValueError(f"convert: input {name!r} has no declared rank; give its size with --shape {name}=AxB")
        dims = shapes.get(name) or [1 if d is None else d for d in shape]
        if shape is not None and len(dims) != len(shape):
            raise ValueError(f"convert: --shape {name} has {len(dims)} dims, the input has {len(shape)}")
        examples.append(F.zeros(dims, dtype=dtype or "float32"))
        dyn = [k for k, d in enumerate(shape or []) if d is None]
        if dyn and not static:
            dynamic[name] = dyn
    kwargs = dict(input_names=model.input_names, output_names=model.output_names, weights=weights,
                  metadata={"converted_from": str(onnx_path)})
    try:
        export(model, examples, out_path, dynamic_axes=dynamic or None, **kwargs)
    except ValueError as e:
        if not dynamic or "dynamic axis" not in str(e):
            raise
        print(f"note: the ONNX graph fixes sizes its inputs declare dynamic ({e}); converting with static shapes",
              file=sys.stderr)
        dynamic = {}
        export(model, examples, out_path, **kwargs)
    return {"inputs": [(n, list(x.shape), x.dtype.name) for n, x in zip(model.input_names, examples)],
            "dynamic_axes": dynamic}


def _info(path: str) -> None:
    from .mnnx import load

    m = load(path)
    print(f"producer: {m.producer}")
    for k, v in m.metadata.items():
        print(f"  {k}: {v}")
    for n, dt, s in m.inputs:
        print(f"input  {n}: {dt}{['?' if d is None else d for d in s]}")
    for n, dt, s in m.outputs:
        print(f"output {n}: {dt}{['?' if d is None else d for d in s]}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="mnnpy", description="mnnpy model tools")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="convert an ONNX model to .mnnx")
    c.add_argument("onnx", help="input .onnx file")
    c.add_argument("out", help="output .mnnx file")
    c.add_argument("--shape", action="append", default=[], metavar="NAME=AxB",
                   help="example size of an input (dynamic dims default to 1); repeatable")
    c.add_argument("--static", action="store_true", help="fix every dim at the example size")
    c.add_argument("--weights", choices=("float32", "float16", "int8"), default="float32",
                   help="storage of float32 weight tensors")
    i = sub.add_parser("info", help="print an .mnnx file's inputs, outputs and metadata")
    i.add_argument("model")
    args = ap.parse_args(argv)
    try:
        if args.command == "info":
            _info(args.model)
            return 0
        shapes = {}
        for s in args.shape:
            name, eq, dims = s.partition("=")
            if not eq:
                ap.error(f"--shape expects NAME=AxB, got {s!r}")
            shapes[name] = _dims(dims)
        summary = convert(args.onnx, args.out, shapes, args.static, args.weights)
    except (ValueError, TypeError, NotImplementedError, FileNotFoundError, argparse.ArgumentTypeError) as e:
        print(f"mnnpy {args.command}: error: {e}", file=sys.stderr)
        return 1
    dyn = ", ".join(f"{k}{v}" for k, v in summary["dynamic_axes"].items()) or "none"
    print(f"wrote {args.out}: inputs {summary['inputs']}, dynamic axes {dyn}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
