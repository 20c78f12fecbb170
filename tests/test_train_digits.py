"""End-to-end training tests: the digits example's model, eager vs lazy, and a synthetic problem.

The digits test needs scikit-learn (its data set ships with it; CI installs it);
it is skipped, with that reason, only when sklearn cannot be imported.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

import mnn_expr as F
import mnn_nn as nn
import mnn_optim as optim
from mnn_nn.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import train_digits  # noqa: E402

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
needs_sklearn = pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn is not installed (it ships the digits data)")


@pytest.fixture(scope="module")
def digits() -> tuple:
    return train_digits.load_digits_split(seed=0)


@needs_sklearn
def test_digits_small_cnn_learns(digits: tuple) -> None:
    """Three epochs of the example's CNN already classify most held-out digits."""
    x_tr, y_tr, x_te, y_te = digits
    assert x_tr.shape[1:] == (1, 8, 8) and len(x_tr) + len(x_te) == 1797
    F.random.seed(0)
    model = train_digits.make_model()
    opt = optim.Adam(model.parameters(), lr=5e-3)
    before = train_digits.accuracy(model, x_te, y_te)
    losses = []
    for _ in range(3):
        for xb, yb in DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True, seed=0):
            losses.append(train_digits.train_step(model, opt, xb, yb))
    after = train_digits.accuracy(model, x_te, y_te)
    assert before < 0.3, before  # untrained: about chance
    assert after > 0.85, after
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    # the accuracy helper agrees with a numpy argmax of the logits
    logits = model(F.array(x_te)).read()
    assert after == pytest.approx(float(np.mean(np.argmax(logits, axis=1) == y_te)))


@needs_sklearn
def test_digits_eager_lazy_and_compiled_losses_agree(digits: tuple) -> None:
    runs = train_digits.eager_lazy_compiled(digits, seed=0, steps=3, batch_size=32)
    eager = runs["eager"]
    assert len(eager) == len(runs["lazy"]) == len(runs["compiled"]) == 3
    np.testing.assert_allclose(runs["lazy"], eager, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(runs["compiled"], eager, rtol=1e-4, atol=1e-5)
    assert eager[-1] != eager[0]  # the weights did change between steps


def _torch_lenet(state: dict):
    """The example's CNN in torch (same layer indices, so the state dict maps one to one)."""
    torch = pytest.importorskip("torch", reason="torch is the reference for the training steps")
    tnn = torch.nn
    model = tnn.Sequential(
        tnn.Conv2d(1, 16, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(16, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(128, 64), tnn.ReLU(), tnn.Linear(64, 10))
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return torch, model


@pytest.mark.parametrize("lazy", [False, True])
def test_training_steps_match_torch(lazy: bool) -> None:
    """Same initial weights, same batches: our losses and final weights follow torch's SGD-momentum run."""
    rng = np.random.default_rng(3)
    x = rng.random((4, 16, 1, 8, 8), dtype=np.float32)  # 4 batches of 16 images
    y = rng.integers(0, 10, size=(4, 16)).astype(np.int32)
    F.random.seed(3)
    model = train_digits.make_model()
    state = model.state_dict()
    torch, ref = _torch_lenet(state)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ours, theirs = [], []
    with F.lazy_eval(lazy):
        for xb, yb in zip(x, y):
            ours.append(train_digits.train_step(model, opt, F.array(xb), F.array(yb)))
            ref_opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(xb)), torch.from_numpy(yb).long())
            loss.backward()
            ref_opt.step()
            theirs.append(loss.item())
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value, ref.state_dict()[name].numpy(), rtol=1e-3, atol=1e-5, err_msg=name)


def test_cross_entropy_matches_numpy_reference() -> None:
    """The loss the training minimises, against a numpy log-softmax."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 10)).astype(np.float32)
    target = rng.integers(0, 10, size=6).astype(np.int32)
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -logp[np.arange(6), target].mean()
    got = nn.loss.cross_entropy(F.array(logits), F.array(target)).item()
    assert got == pytest.approx(float(expected), rel=1e-5)


def test_loss_goes_down_on_synthetic_blobs() -> None:
    """No sklearn: a small MLP separates three Gaussian blobs; loss falls and accuracy rises."""
    rng = np.random.default_rng(0)
    centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]], np.float32)
    y = rng.integers(0, 3, size=300).astype(np.int32)
    x = (centres[y] + 0.5 * rng.normal(size=(300, 2))).astype(np.float32)
    F.random.seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    epoch_losses = []
    for _ in range(5):
        losses = [train_digits.train_step(model, opt, xb, yb)
                  for xb, yb in DataLoader(TensorDataset(x, y), batch_size=30, shuffle=True, seed=0)]
        epoch_losses.append(np.mean(losses))
    assert epoch_losses[-1] < 0.5 * epoch_losses[0], epoch_losses
    pred = np.argmax(model(F.array(x)).read(), axis=1)
    assert np.mean(pred == y) > 0.9


def test_text_progress_bar_without_tqdm(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Without tqdm the example falls back to its own bar, which yields every batch and shows the postfix."""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `from tqdm import tqdm` raise ImportError
    bar = train_digits.progress(range(4), 4, "epoch 1/1")
    seen = []
    for item in bar:
        seen.append(item)
        bar.set_postfix_str(f"loss {item}")
    assert seen == [0, 1, 2, 3]
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "4/4 loss 3" in err and err.endswith("\n")
