"""Train a small CNN on scikit-learn's bundled 8x8 handwritten digits with im2col_cnn and plain NumPy.

The data set (1,797 images, 10 classes) ships with scikit-learn, so nothing is downloaded. The network::

    x (N, 8, 8, 1) -> conv 3x3, 16, pad 1 -> ReLU -> max pool 2 -> (N, 4, 4, 16)
                   -> conv 3x3, 32, pad 1 -> ReLU -> max pool 2 -> (N, 2, 2, 32)
                   -> flatten (N, 128) -> dense (N, 10) -> softmax cross-entropy

is trained with Adam on 80% of the images and tested on the other 20% (a stratified split). Run::

    pip install -e ".[examples]"      # from the repository root: the package, scikit-learn and matplotlib
    python examples/train_digits.py --epochs 15 --seed 0 --plot digits.png
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

import im2col_cnn as ic

CLASSES = 10


@dataclass
class History:
    """Per-epoch figures of a training run."""

    loss: list[float] = field(default_factory=list)  # mean training loss over the epoch's batches
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # time since the start of training, at each epoch's end


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits as NHWC float images in [0, 1] (N, 8, 8, 1) and int labels (N,), split 80/20, stratified."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit("this example needs scikit-learn: pip install -e .[examples]")
    digits = load_digits()
    x = (digits.images / 16.0).reshape(-1, 8, 8, 1)  # (1797, 8, 8) -> (1797, 8, 8, 1)
    return train_test_split(x, digits.target, test_size=0.2, random_state=seed, stratify=digits.target)


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """He-initialised weights: w1 (3, 3, 1, 16), w2 (3, 3, 16, 32), w3 (128, 10); zero biases."""

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)

    return {
        "w1": he((3, 3, 1, 16), 9),
        "b1": np.zeros(16),
        "w2": he((3, 3, 16, 32), 9 * 16),
        "b2": np.zeros(32),
        "w3": he((128, CLASSES), 128),
        "b3": np.zeros(CLASSES),
    }


def forward(params: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Logits (N, 10) for images ``x`` (N, 8, 8, 1), and what :func:`backward` needs."""
    z1, c1 = ic.conv2d_forward(x, params["w1"], params["b1"], padding=1)  # (N, 8, 8, 16)
    a1 = np.maximum(z1, 0)
    p1, m1 = ic.max_pool2d_forward(a1, 2)  # (N, 4, 4, 16)
    z2, c2 = ic.conv2d_forward(p1, params["w2"], params["b2"], padding=1)  # (N, 4, 4, 32)
    a2 = np.maximum(z2, 0)
    p2, m2 = ic.max_pool2d_forward(a2, 2)  # (N, 2, 2, 32)
    flat = p2.reshape(len(x), -1)  # (N, 2, 2, 32) -> (N, 128)
    logits = flat @ params["w3"] + params["b3"]
    return logits, (c1, z1, m1, c2, z2, m2, flat, p2.shape)


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``logits`` (N, 10) against labels ``y`` (N,), and its gradient (N, 10)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(y)
    loss = -float(log_p[np.arange(n), y].mean())
    dlogits = np.exp(log_p)
    dlogits[np.arange(n), y] -= 1.0
    return loss, dlogits / n


def backward(params: dict[str, np.ndarray], dlogits: np.ndarray, cache: tuple) -> dict[str, np.ndarray]:
    """Gradients of the loss with respect to every parameter, from ``dlogits`` (N, 10)."""
    c1, z1, m1, c2, z2, m2, flat, p2_shape = cache
    grads = {"w3": flat.T @ dlogits, "b3": dlogits.sum(axis=0)}
    dp2 = (dlogits @ params["w3"].T).reshape(p2_shape)  # (N, 128) -> (N, 2, 2, 32)
    da2 = ic.max_pool2d_backward(dp2, m2)
    dp1, grads["w2"], grads["b2"] = ic.conv2d_backward(da2 * (z2 > 0), c2)
    da1 = ic.max_pool2d_backward(dp1, m1)
    _, grads["w1"], grads["b1"] = ic.conv2d_backward(da1 * (z1 > 0), c1, need_dx=False)  # the first layer needs no dx
    return grads


class Adam:
    """Adam (Kingma & Ba) with the usual defaults; updates the parameter arrays in place."""

    def __init__(self, params: dict[str, np.ndarray], lr: float = 3e-3, beta1: float = 0.9, beta2: float = 0.999):
        self.lr, self.beta1, self.beta2, self.t = lr, beta1, beta2, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        correction = np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        for k, g in grads.items():
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g * g
            params[k] -= self.lr * correction * self.m[k] / (np.sqrt(self.v[k]) + 1e-8)


def accuracy(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``x`` classified as ``y``."""
    logits, _ = forward(params, x)
    return float((logits.argmax(axis=1) == y).mean())


def blas_threads(threads: int | None) -> contextlib.AbstractContextManager:
    """Limit BLAS to ``threads`` threads while training (``None``: leave it alone).

    The matrices here are small (a batch of 32 images of 8x8), and OpenBLAS's worker threads cost more than they
    give: one thread ran 6-7x faster than two on a busy 2-core machine. threadpoolctl comes with scikit-learn.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return contextlib.nullcontext() if threads is None else threadpool_limits(limits=threads, user_api="blas")


def train(
    epochs: int, seed: int, *, batch_size: int = 32, lr: float = 3e-3, threads: int | None = 1, verbose: bool = True
) -> tuple[dict[str, np.ndarray], History]:
    """Train for ``epochs`` epochs from the seed ``seed``; returns the parameters and the per-epoch history."""
    with blas_threads(threads):
        return _train(epochs, seed, batch_size, lr, verbose)


def _train(epochs: int, seed: int, batch_size: int, lr: float, verbose: bool) -> tuple[dict[str, np.ndarray], History]:
    x_train, x_test, y_train, y_test = load_data(seed)
    rng = np.random.default_rng(seed)
    params = init_params(rng)
    optimizer = Adam(params, lr=lr)
    history = History()
    if verbose:
        print(f"{len(x_train)} training and {len(x_test)} test images of 8x8; batch {batch_size}, Adam lr {lr:g}")
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_train))
        losses = []
        for i in range(0, len(order), batch_size):
            batch = order[i : i + batch_size]
            logits, cache = forward(params, x_train[batch])
            loss, dlogits = softmax_cross_entropy(logits, y_train[batch])
            optimizer.step(params, backward(params, dlogits, cache))
            losses.append(loss)
        history.loss.append(float(np.mean(losses)))
        history.train_acc.append(accuracy(params, x_train, y_train))
        history.test_acc.append(accuracy(params, x_test, y_test))
        history.seconds.append(time.perf_counter() - start)
        if verbose:
            print(
                f"epoch {epoch:>3}/{epochs}: loss {history.loss[-1]:.4f}, train accuracy {history.train_acc[-1]:.2%}, "
                f"test accuracy {history.test_acc[-1]:.2%} ({history.seconds[-1]:.1f} s)",
                flush=True,
            )
    return params, history


def plot_history(history: History, path: str) -> None:
    """PNG at ``path``: training loss (left) and train/test accuracy (right) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history.loss) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, history.loss, marker="o")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss (cross-entropy)")
    left.set_yscale("log")
    left.set_title("loss")
    right.plot(epochs, [100 * a for a in history.train_acc], marker="o", label="train")
    right.plot(epochs, [100 * a for a in history.test_acc], marker="o", label="test (held out)")
    right.axhline(97, color="gray", linestyle="--", linewidth=1, label="97%")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy (%)")
    right.set_title(f"accuracy: {history.test_acc[-1]:.1%} on the test set at the end")
    right.legend(loc="lower right")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    fig.suptitle("im2col_cnn: a small CNN on scikit-learn's 8x8 digits")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15, help="passes over the training images (default 15)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the shuffling")
    parser.add_argument("--batch-size", type=int, default=32, help="images per gradient step (default 32)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate (default 0.003)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads while training (default 1, fastest here)")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of loss and accuracy per epoch (needs matplotlib)")
    args = parser.parse_args(argv)
    if min(args.epochs, args.batch_size, args.threads) < 1:
        parser.error("--epochs, --batch-size and --threads must be >= 1")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install -e .[examples]")
    return args


def main(argv: Sequence[str] | None = None) -> History:
    args = parse_args(argv)
    _, history = train(args.epochs, args.seed, batch_size=args.batch_size, lr=args.lr, threads=args.threads)
    print(f"final test accuracy {history.test_acc[-1]:.2%} after {args.epochs} epochs, {history.seconds[-1]:.1f} s")
    if args.plot:
        plot_history(history, args.plot)
        print(f"wrote {args.plot}")
    return history


if __name__ == "__main__":
    main()
