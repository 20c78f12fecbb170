"""Fuzz harness for the .mnnx reader (atheris / libFuzzer): parse arbitrary bytes and, when they
parse, run the model on small inputs.  Anything but a clean ValueError/TypeError/IndexError is a
bug.  Run: ``python tests/fuzz_mnnx.py CORPUS_DIR -max_total_time=60`` (tests/test_mnnx.py
runs it briefly in CI)."""

import sys

import atheris

with atheris.instrument_imports():
    import mnn_expr as F
    from mnn_expr import _native


def one_input(data: bytes) -> None:
    try:
        m = _native.MnnxModel.from_bytes(data)
        ins = [F.zeros([1 if d < 0 else min(d, 64) for d in shape], dtype=dt) for _, dt, shape in m.inputs]
        m.run(ins)
    except (ValueError, TypeError, IndexError, MemoryError):
        pass


if __name__ == "__main__":
    F.set_thread_number(1)
    _native.set_max_model_value_bytes(64 << 20)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
