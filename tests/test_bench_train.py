"""Smoke test of bench/train.py: its systems train like torch, and its argument parsing."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mnn_expr as F  # noqa: E402
import mnn_nn as nn  # noqa: E402
import mnn_optim as optim  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load():
    path = os.path.join(ROOT, "bench", "train.py")
    spec = importlib.util.spec_from_file_location("bench_train", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("model", ["mlp", "lenet"])
def test_steps_match_torch(model):
    bt = _load()
    fns = bt.Systems(np, torch, F, nn, optim).build(model)
    errors: list[str] = []
    losses = bt.check(np, fns, errors, model)
    assert errors == []
    assert set(losses) == {"torch", "ours eager", "ours lazy", "ours compiled"}
    for system in ("ours eager", "ours lazy", "ours compiled"):
        np.testing.assert_allclose(losses[system], losses["torch"], rtol=1e-4, atol=1e-5)
    # one more timed-style step still runs and changes the loss like torch's
    want = bt.loss_value(fns["torch"]())
    for system in ("ours lazy", "ours compiled"):
        assert abs(bt.loss_value(fns[system]()) - want) < 1e-3


def test_parse_args():
    bt = _load()
    a = bt.parse_args(["--quick", "--only", "mlp"])
    assert a.steps == 10 and a.only == ["mlp"] and a.threads == 2
    assert bt.parse_args([]).steps == 30
    with pytest.raises(SystemExit):
        bt.parse_args(["--only", "resnet"])


def test_check_catches_a_wrong_step():
    bt = _load()
    fns = bt.Systems(np, torch, F, nn, optim).build("mlp")
    fns["ours eager"].parts[2].learning_rate = 0.5  # not torch's lr: step 2's loss must differ
    errors: list[str] = []
    bt.check(np, fns, errors, "mlp")
    assert len(errors) == 1 and "ours eager" in errors[0] and "WRONG" in errors[0]
    assert isinstance(fns["ours eager"], AssertionError)
    assert not isinstance(fns["ours lazy"], BaseException)
    assert not isinstance(fns["ours compiled"], BaseException)
