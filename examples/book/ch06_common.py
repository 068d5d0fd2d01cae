"""What the chapter-6 scripts share: the data, the textbook's multi-layer net, a small training
loop and the plotting helpers.

The network is the textbook's ``MultiLayerNet`` (and ``MultiLayerNetExtend``) built from
minigrad's layers: each hidden layer is Linear → [BatchNorm1d] → activation → [Dropout], then
a final Linear gives the scores. Weights start from ``nn.Linear``'s ``init=``: ``"he"``
(√(2/n)), ``"xavier"`` (√(1/n), the textbook's Xavier) or a fixed standard deviation such as
0.01, where n is the layer's number of inputs.

Batches are drawn as the textbook draws them, ``rng.choice(N, batch_size)`` (with
replacement), and an "epoch" is N / batch_size of them. Every run takes its generator from the
seed, so runs compared in one figure see the same batches in the same order.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import minigrad
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import minigrad

from minigrad import Tensor, nn, no_grad
from minigrad import functional as F
from minigrad.data import load_mnist

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "book" / "img"

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


# ------------------------------------------------------------------------------ command line
def arguments(doc: str | None, argv: Sequence[str] | None,
              add: Callable[[argparse.ArgumentParser], None]) -> argparse.Namespace:
    """Parse ``argv`` with the options every script has (``--out``, ``--seed``) and its own."""
    lines = (doc or "").strip().splitlines()
    parser = argparse.ArgumentParser(description=lines[0] if lines else None,
                                     epilog="\n".join(lines[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for the PNG figures (default: docs/book/img)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    add(parser)
    return parser.parse_args(argv)


def mnist(train: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The MNIST subset shipped with minigrad as flat rows: (x_train, t_train, x_test, t_test),
    the training part cut to its first ``train`` images (the textbook's ``x_train[:300]``)."""
    (x, t), (x_test, t_test) = load_mnist(subset=True, flatten=True)
    if train is not None:
        x, t = x[:train], t[:train]
    return x, t, x_test, t_test


# ------------------------------------------------------------------------------ the network
def mlp(sizes: Sequence[int], activation: str = "relu", init: str | float = "he", *,
        batchnorm: bool = False, eps: float = 1e-6, dropout: float = 0.0, bias: bool = True,
        rng: np.random.Generator | None = None) -> nn.Sequential:
    """The textbook's multi-layer net: ``sizes = (784, 100, 100, 10)`` gives two hidden layers.

    Args:
        sizes: input size, the hidden layers' sizes, output size.
        activation: ``"relu"``, ``"sigmoid"`` or ``"tanh"`` after each hidden layer.
        init: every Linear's ``init=``: ``"he"``, ``"xavier"`` or a standard deviation.
        batchnorm: nn.BatchNorm1d (see :func:`batch_norm_layer`) between each hidden Linear
            and its activation.
        eps: BatchNorm's ε under the square root; the textbook's 10e-7 (= 1e-6) by default,
            where PyTorch's is 1e-5: with weights of std 10⁻⁴ a layer's batch variance is
            small enough for that difference to decide whether the net learns.
        dropout: nn.Dropout(p) after each hidden activation when p > 0.
        bias: Linear layers with biases (the activation-histogram experiment has none).
        rng: the generator of the initial weights.

    >>> net = mlp((784, 100, 10), "sigmoid", "xavier", rng=np.random.default_rng(0))
    >>> [type(m).__name__ for m in net]
    ['Linear', 'Sigmoid', 'Linear']
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"mlp: activation must be one of {sorted(ACTIVATIONS)}, "
                         f"got {activation!r}")
    if len(sizes) < 2:
        raise ValueError(f"mlp: sizes needs at least an input and an output size, got {sizes}")
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(nn.Linear(n_in, n_out, bias=bias, init=init, rng=rng))
        if batchnorm:
            layers.append(batch_norm_layer(n_out, eps=eps))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(nn.Dropout(dropout, rng=rng))
    layers.append(nn.Linear(sizes[-2], sizes[-1], bias=bias, init=init, rng=rng))
    return nn.Sequential(*layers)


class BookBatchNorm(nn.Module):
    """The textbook's BatchNormalization layer (``minigrad.book.BatchNormalization``, the
    book's algorithm and its ε and momentum) as a module, for a minigrad without
    nn.BatchNorm1d: γ and β are Parameters, the running mean and variance buffers."""

    def __init__(self, num_features: int, eps: float = 1e-6, momentum: float = 0.9) -> None:
        super().__init__()
        self.weight = nn.Parameter(np.ones(num_features))
        self.bias = nn.Parameter(np.zeros(num_features))
        self.register_buffer("running_mean", np.zeros(num_features, np.float32))
        self.register_buffer("running_var", np.zeros(num_features, np.float32))
        self.eps, self.momentum = eps, momentum

    def forward(self, x: Tensor) -> Tensor:
        from minigrad import book

        op = book.BatchNormalization(self.momentum, self.running_mean, self.running_var,
                                     train_flg=self.training, eps=self.eps)
        return op(x, self.weight, self.bias)


def batch_norm_layer(num_features: int, eps: float = 1e-6) -> nn.Module:
    """``nn.BatchNorm1d(num_features, eps=eps)``, or the textbook's layer where minigrad has
    no nn.BatchNorm1d (the same normalisation; the book keeps the biased batch variance in
    its running variance, PyTorch the unbiased one)."""
    if hasattr(nn, "BatchNorm1d"):
        return nn.BatchNorm1d(num_features, eps=eps)
    return BookBatchNorm(num_features, eps=eps)


def has_batch_norm() -> bool:
    """Whether this minigrad has a Batch Normalization layer for :func:`mlp`."""
    if hasattr(nn, "BatchNorm1d"):
        return True
    try:
        from minigrad import book
    except ImportError:
        return False
    return hasattr(book, "BatchNormalization")


def weight_decay_groups(net: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups that decay only the Linear weights, as the textbook's
    ``weight_decay_lambda`` does: its loss adds ½·λ·ΣW², whose gradient λ·W is exactly what
    the optimisers' ``weight_decay=λ`` adds. Biases (and BatchNorm's γ, β) are left alone."""
    weights = [m.weight for m in net.modules() if isinstance(m, nn.Linear)]
    chosen = {id(w) for w in weights}
    others = [p for p in net.parameters() if id(p) not in chosen]
    groups = [{"params": weights, "weight_decay": weight_decay}]
    if others:
        groups.append({"params": others, "weight_decay": 0.0})
    return groups


# ------------------------------------------------------------------------------ training
def step(net: nn.Module, optimizer: minigrad.optim.Optimizer, x: np.ndarray,
         t: np.ndarray) -> float:
    """One update on one batch; returns the batch's loss before the update."""
    loss = F.softmax_cross_entropy(net(Tensor(x)), t)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.data)


def train_losses(net: nn.Module, optimizer: minigrad.optim.Optimizer, x: np.ndarray,
                 t: np.ndarray, *, iterations: int, batch_size: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``iterations`` updates on random batches; the loss of each, in order."""
    losses = np.empty(iterations)
    for i in range(iterations):
        batch = rng.choice(len(x), batch_size)
        losses[i] = step(net, optimizer, x[batch], t[batch])
    return losses


def accuracy(net: nn.Module, x: np.ndarray, t: np.ndarray, chunk: int = 1000) -> float:
    """Fraction of ``x`` classified as ``t``, in evaluation mode (no dropout, BatchNorm's
    running statistics); the module's mode is restored afterwards."""
    training = net.training
    net.eval()
    correct = 0
    with no_grad():
        for lo in range(0, len(x), chunk):
            scores = net(Tensor(x[lo:lo + chunk])).data
            correct += int((scores.argmax(axis=1) == t[lo:lo + chunk]).sum())
    net.train(training)
    return correct / len(x)


def train_epochs(net: nn.Module, optimizer: minigrad.optim.Optimizer,
                 data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], *, epochs: int,
                 batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Train for ``epochs`` epochs of N / batch_size random batches, measuring the accuracy on
    the training and test (or validation) images before the first and after every epoch.

    Returns:
        ``{"train_acc": (epochs + 1,), "test_acc": (epochs + 1,), "loss": (iterations,)}``.
    """
    x, t, x_test, t_test = data
    per_epoch = max(len(x) // batch_size, 1)
    train_acc, test_acc, losses = [accuracy(net, x, t)], [accuracy(net, x_test, t_test)], []
    for _ in range(epochs):
        losses.append(train_losses(net, optimizer, x, t, iterations=per_epoch,
                                   batch_size=batch_size, rng=rng))
        train_acc.append(accuracy(net, x, t))
        test_acc.append(accuracy(net, x_test, t_test))
    return {"train_acc": np.array(train_acc), "test_acc": np.array(test_acc),
            "loss": np.concatenate(losses) if losses else np.empty(0)}


# ------------------------------------------------------------------------------ plotting
def smooth(values: Sequence[float], window: int = 11) -> np.ndarray:
    """A centred moving average over ``window`` points (shorter at the ends), for noisy
    per-iteration losses; the result has the input's length."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0 or window <= 1:
        return values
    kernel = np.ones(min(window, len(values)))
    total = np.convolve(values, kernel, mode="same")
    count = np.convolve(np.ones_like(values), kernel, mode="same")
    return total / count


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, out: Path, name: str, dpi: int = 80) -> Path:
    """Write ``fig`` as ``out/name`` (PNG), creating ``out``, and close it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    print(f"wrote {path}")
    return path


def plot_accuracy(ax: Any, curves: dict[str, np.ndarray], title: str) -> None:
    """Train (circles) and test (squares) accuracy per epoch, the textbook's way."""
    markers = {"train": "o", "test": "s"}
    for label, y in curves.items():
        ax.plot(np.arange(len(y)), y, marker=markers.get(label), markevery=max(len(y) // 20, 1),
                markersize=4, label=label)
    ax.set_xlabel("epochs")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.0)
    ax.set_title(title)
    ax.legend(loc="lower right")


def plot_losses(losses: dict[str, np.ndarray], markers: dict[str, str], ylim: float, out: Path,
                name: str) -> Path:
    """The smoothed training loss per iteration of each run, the textbook's way (its figures
    6-9 and 6-15), written as ``out/name``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, loss in losses.items():
        ax.plot(np.arange(len(loss)), smooth(loss), marker=markers[label],
                markevery=max(len(loss) // 20, 1), markersize=4, label=label)
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss")
    ax.set_ylim(0, ylim)
    ax.legend()
    return save(fig, out, name)
