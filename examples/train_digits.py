#!/usr/bin/env python
"""Train a small LeNet-style CNN on scikit-learn's handwritten digits with mnnpy.

The data set (1797 grey 8x8 images of the digits 0-9) ships with scikit-learn,
so nothing is downloaded.  Everything else is our stack: ``mnn_nn`` layers and
losses, ``mnn_nn.data`` for batching and ``mnn_optim`` for the updates.

Run from the repository root (after building the native module)::

    pip install scikit-learn matplotlib tqdm    # matplotlib and tqdm are optional
    python examples/train_digits.py             # about 10-20 s on 2 cores

It prints a progress bar per epoch, the test accuracy after each epoch, saves a
checkpoint and reloads it into a fresh model, writes a plot of loss and
accuracy, exports the model as ``.mnnx`` and runs it in the native ``mnnx-run``
CLI (no Python) on the test images, and finally checks that eager and lazy
evaluation and a compiled training step (``F.compile``) give the same losses
step by step.  The exit status is non-zero when the test accuracy is below 97%,
the CLI's predictions differ from the Python model's, or the three disagree.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Iterable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run the checkout's packages

import numpy as np  # noqa: E402

import mnn_expr as F  # noqa: E402
import mnn_nn as nn  # noqa: E402
import mnn_optim as optim  # noqa: E402
from mnn_nn.data import DataLoader, TensorDataset  # noqa: E402

TARGET_ACCURACY = 0.97


# --------------------------------------------------------------------------- data and model

def load_digits_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: images [N, 1, 8, 8] float32 in [0, 1], labels int32.

    A stratified 75/25 split with a fixed seed, so every run sees the same test set.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    return x_tr, y_tr, x_te, y_te


def make_model(width: int = 16) -> nn.Module:
    """LeNet in miniature: two conv/ReLU/max-pool stages (8x8 -> 4x4 -> 2x2) and two linear layers."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),          # [N, w, 4, 4]
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # [N, 2w, 2, 2]
        nn.Flatten(),
        nn.Linear(2 * width * 4, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Fraction of ``x`` classified as ``y`` (evaluation mode, in batches)."""
    model.eval()
    correct = 0
    for xb, yb in DataLoader(TensorDataset(x, y), batch_size=batch_size):
        pred = F.argmax(model(xb), axis=1).read()
        correct += int((pred == yb.read()).sum())
    model.train()
    return correct / len(x)


def train_step(model: nn.Module, opt: optim.Optimizer, xb: F.Var, yb: F.Var) -> float:
    """One update: forward, cross-entropy, gradients of every parameter, optimiser step."""
    loss = nn.loss.cross_entropy(model(xb), yb)
    params = list(model.parameters())
    grads = F.grad(loss, params)
    opt.apply(grads)
    return float(loss.item())


def compilable_step(model: nn.Module, opt: optim.Optimizer) -> Any:
    """``train_step`` returning the loss as a Var (a compiled function cannot read values)."""
    def step(xb: F.Var, yb: F.Var) -> F.Var:
        loss = nn.loss.cross_entropy(model(xb), yb)
        opt.apply(F.grad(loss, list(model.parameters())))
        return loss
    return step


# --------------------------------------------------------------------------- progress bar

def progress(batches: Iterable, total: int, desc: str) -> Any:
    """tqdm when it is installed, else a small text bar redrawn in place on stderr."""
    try:
        from tqdm import tqdm
        return tqdm(batches, total=total, desc=desc, unit="batch", leave=True, file=sys.stderr)
    except ImportError:
        return _TextBar(batches, total, desc)


class _TextBar:
    """Minimal stand-in for tqdm: ``for b in bar: ...; bar.set_postfix_str(text)``."""

    def __init__(self, batches: Iterable, total: int, desc: str) -> None:
        self.it, self.total, self.desc, self.n, self.postfix = iter(batches), total, desc, 0, ""

    def __iter__(self) -> _TextBar:
        return self

    def __next__(self) -> object:
        try:
            item = next(self.it)
        except StopIteration:
            sys.stderr.write("\n")
            raise
        self.n += 1
        return item

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        done = int(30 * self.n / max(self.total, 1))
        sys.stderr.write(f"\r{self.desc} [{'#' * done}{'.' * (30 - done)}] {self.n}/{self.total} {text}")
        sys.stderr.flush()


# --------------------------------------------------------------------------- the parts of the demo

def train(args: argparse.Namespace, data: tuple) -> tuple[nn.Module, dict]:
    """Trains ``args.epochs`` epochs; returns the model and the per-epoch history."""
    x_tr, y_tr, x_te, y_te = data
    F.random.seed(args.seed)  # the initial weights
    model = make_model()
    opt = optim.Adam(model.parameters(), lr=args.lr)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=args.batch_size, shuffle=True, seed=args.seed)
    history: dict = {"loss": [], "accuracy": []}
    print(f"model: {model.num_parameters()} parameters; {len(x_tr)} training / {len(x_te)} test images")
    for epoch in range(1, args.epochs + 1):
        bar = progress(loader, len(loader), f"epoch {epoch:2d}/{args.epochs}")
        seen, total_loss, start = 0, 0.0, time.perf_counter()
        for xb, yb in bar:
            loss = train_step(model, opt, xb, yb)
            seen += xb.shape[0]
            total_loss += loss * xb.shape[0]
            rate = seen / (time.perf_counter() - start)
            bar.set_postfix_str(f"loss {loss:.4f}, {rate:,.0f} samples/s")
        sched.step()
        acc = accuracy(model, x_te, y_te)
        history["loss"].append(total_loss / seen)
        history["accuracy"].append(acc)
        print(f"epoch {epoch:2d}: mean loss {total_loss / seen:.4f}, test accuracy {acc:.2%}")
    return model, history


def save_and_reload(model: nn.Module, out: str, data: tuple) -> float:
    """Saves a checkpoint, loads it into a fresh model and re-evaluates it."""
    path = os.path.join(out, "digits_cnn.npz")
    model.save(path)  # atomic: written to a temporary file, then renamed
    fresh = make_model().load(path)
    acc = accuracy(fresh, data[2], data[3])
    print(f"checkpoint {path} ({os.path.getsize(path):,} bytes) reloaded: test accuracy {acc:.2%}")
    return acc


def deploy(model: nn.Module, out: str, data: tuple) -> bool:
    """Exports the trained model as .mnnx and runs it in the native CLI mnnx-run (no Python in
    that process) on the test images; its predictions must be the Python model's."""
    import subprocess

    from mnn_nn.deploy import runtime_cli

    model.eval()
    x_te, y_te = data[2], data[3]
    path = os.path.join(out, "digits_cnn.mnnx")
    nn.export(model, [F.array(x_te[:1])], path, input_names=["image"], output_names=["logits"],
              dynamic_axes={"image": [0]}, metadata={"task": "digits", "classes": "0-9"})
    np.save(os.path.join(out, "test_images.npy"), x_te)
    cmd = [runtime_cli(), path, os.path.join(out, "test_images.npy"), "--save", out, "--bench", "20", "--threads", "2"]
    print(f"exported {path} ({os.path.getsize(path):,} bytes); running: {' '.join(os.path.basename(c) for c in cmd)}")
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"FAIL: mnnx-run exited with {run.returncode}: {run.stderr.strip()}")
        return False
    print("\n".join("  | " + line for line in run.stdout.strip().splitlines()))
    native = np.load(os.path.join(out, "logits.npy"))
    python = model(F.array(x_te)).numpy()
    same = bool((native.argmax(1) == python.argmax(1)).all())
    print(f"mnnx-run: test accuracy {(native.argmax(1) == y_te).mean():.2%} (Python model "
          f"{(python.argmax(1) == y_te).mean():.2%}); {'the same' if same else 'DIFFERENT'} predictions for all "
          f"{len(y_te)} images; max |logit diff| {np.abs(native - python).max():.1e}")
    return same and np.allclose(native, python, rtol=1e-4, atol=1e-4)


def plot(history: dict, out: str) -> None:
    """Loss and test accuracy per epoch as a PNG (skipped when matplotlib is missing)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install matplotlib)")
        return
    epochs = range(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, history["loss"], marker="o")
    ax1.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="loss")
    ax2.plot(epochs, [100 * a for a in history["accuracy"]], marker="o", color="tab:green")
    ax2.axhline(100 * TARGET_ACCURACY, color="grey", linestyle="--", linewidth=1)
    ax2.set(xlabel="epoch", ylabel="test accuracy (%)", title="accuracy")
    fig.tight_layout()
    path = os.path.join(out, "digits_training.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot written to {path}")


def eager_lazy_compiled(data: tuple, seed: int, steps: int = 6, batch_size: int = 64) -> dict[str, list]:
    """Trains the same model from the same weights on the same batches three ways: eagerly,
    lazily, and as one ``F.compile``'d step (model and optimiser state lifted into the program).

    Returns the per-step losses of each.
    """
    F.random.seed(seed + 1)
    initial = make_model().state_dict()
    x, y = data[0][: steps * batch_size], data[1][: steps * batch_size]
    losses: dict[str, list] = {}
    for mode in ("eager", "lazy", "compiled"):
        model = make_model()
        model.load_state_dict(initial)
        opt = optim.Adam(model.parameters(), lr=1e-2)
        batches = DataLoader(TensorDataset(x, y), batch_size=batch_size)
        if mode == "compiled":
            compiled = F.compile(compilable_step(model, opt), state=[model, opt])
            losses[mode] = [compiled(xb, yb).item() for xb, yb in batches]
        else:
            with F.lazy_eval(mode == "lazy"):
                losses[mode] = [train_step(model, opt, xb, yb) for xb, yb in batches]
    return losses


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-3, help="Adam's learning rate (cosine-annealed)")
    ap.add_argument("--out", default=os.path.join(ROOT, "examples", "out"), help="output folder")
    ap.add_argument("--threads", type=int, default=2, help="native CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if min(args.epochs, args.batch_size, args.threads) < 1 or args.lr <= 0:
        ap.error("--epochs, --batch-size and --threads must be >= 1 and --lr > 0")

    try:
        data = load_digits_split(args.seed)
    except ImportError:
        print("this example needs scikit-learn for the digits data: pip install scikit-learn")
        return 2
    F.set_thread_number(args.threads)
    os.makedirs(args.out, exist_ok=True)

    start = time.perf_counter()
    model, history = train(args, data)
    train_s = time.perf_counter() - start
    final = history["accuracy"][-1]
    print(f"training took {train_s:.1f} s; final test accuracy {final:.2%}")

    reloaded = save_and_reload(model, args.out, data)
    deployed = deploy(model, args.out, data)
    plot(history, args.out)

    runs = eager_lazy_compiled(data, args.seed)
    for i, (a, b, c) in enumerate(zip(runs["eager"], runs["lazy"], runs["compiled"]), 1):
        print(f"step {i}: eager loss {a:.6f}, lazy {b:.6f}, compiled {c:.6f}, "
              f"max |diff| {max(abs(a - b), abs(a - c)):.1e}")
    same = all(np.allclose(runs["eager"], runs[m], rtol=1e-4, atol=1e-5) for m in ("lazy", "compiled"))
    print("eager, lazy and compiled losses match" if same else "MISMATCH between eager, lazy and compiled losses")

    ok = True
    if final < TARGET_ACCURACY:
        print(f"FAIL: test accuracy {final:.2%} is below {TARGET_ACCURACY:.0%}")
        ok = False
    if reloaded != final:
        print(f"FAIL: the reloaded checkpoint scores {reloaded:.2%}, the trained model {final:.2%}")
        ok = False
    if not same:
        ok = False
    if not deployed:
        print("FAIL: the exported model run by mnnx-run does not reproduce the Python model")
        ok = False
    print(f"total time {time.perf_counter() - start:.1f} s: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
