"""Chapter 4's training loop: the book's TwoLayerNet learns MNIST by mini-batch SGD.

    python examples/book/ch04_two_layer_net.py                 # the book's settings
    python examples/book/ch04_two_layer_net.py --iters 200     # a quick look

The book's ``train_neuralnet.py`` (4.5.2, and again in 5.7.4 with backpropagation): a
784-50-10 ``TwoLayerNet`` with weights drawn from N(0, 0.01²), mini-batches of 100 images
drawn at random, plain SGD with learning rate 0.1, 10,000 iterations, and the train and test
accuracy measured once per epoch. The network is ``minigrad.book.TwoLayerNet`` (the layer
version of 5.7, whose gradient is backpropagation on minigrad's tape) and the update is
``minigrad.optim.SGD``, which computes the book's ``params[key] -= lr * grad[key]``.

The data is the MNIST subset shipped with minigrad (10,000 training and 2,000 test images;
``minigrad.data.load_mnist(subset=True)``), so an epoch is 100 iterations and the default run
has 100 epochs where the book's 60,000 images give about 17. Writes ``ch04_accuracy.png`` (the
loss per iteration, the book's figure 4-11, and the accuracy per epoch, figure 4-12) into
``--out`` and prints the accuracies.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:
    import minigrad  # noqa: F401
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import minigrad  # noqa: F401

from minigrad import book, optim
from minigrad.data import load_mnist

DEFAULT_OUT = Path("docs/book/img")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=10_000,
                    help="SGD steps (the book's iters_num; default 10000)")
    ap.add_argument("--batch-size", type=int, default=100, help="images per step (100)")
    ap.add_argument("--lr", type=float, default=0.1, help="the learning rate (0.1)")
    ap.add_argument("--hidden", type=int, default=50, help="hidden units (50)")
    ap.add_argument("--limit", type=int, default=None,
                    help="use only the first LIMIT training and test images")
    ap.add_argument("--seed", type=int, default=0, help="seeds the weights and the batches")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="folder for ch04_accuracy.png (default: docs/book/img, from the "
                         "repository's root)")
    ap.add_argument("--dpi", type=int, default=80, help="resolution of the PNG")
    args = ap.parse_args(argv)
    for name in ("iters", "batch_size", "hidden", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            ap.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    return args


def train(args: argparse.Namespace) -> dict[str, list[float]]:
    """The book's loop; returns the loss per step and the accuracies per epoch."""
    (x_train, t_train), (x_test, t_test) = load_mnist(subset=True, flatten=True, one_hot=True)
    if args.limit is not None:
        x_train, t_train = x_train[:args.limit], t_train[:args.limit]
        x_test, t_test = x_test[:args.limit], t_test[:args.limit]
    rng = np.random.default_rng(args.seed)
    network = book.TwoLayerNet(input_size=784, hidden_size=args.hidden, output_size=10, rng=rng)
    optimizer = optim.SGD(network.parameters(), lr=args.lr)

    train_size = x_train.shape[0]
    batch_size = min(args.batch_size, train_size)
    iter_per_epoch = max(train_size // batch_size, 1)
    history: dict[str, list[float]] = {"loss": [], "train_acc": [], "test_acc": [],
                                       "epoch_iter": []}
    for i in range(args.iters):
        batch_mask = rng.choice(train_size, batch_size)
        x_batch, t_batch = x_train[batch_mask], t_train[batch_mask]
        optimizer.zero_grad()
        loss = network.loss(x_batch, t_batch)
        loss.backward()
        optimizer.step()
        history["loss"].append(float(loss.data))
        if (i + 1) % iter_per_epoch == 0 or i + 1 == args.iters:
            history["train_acc"].append(network.accuracy(x_train, t_train))
            history["test_acc"].append(network.accuracy(x_test, t_test))
            history["epoch_iter"].append(i + 1)
            epoch = len(history["epoch_iter"])
            if epoch == 1 or epoch % 10 == 0 or i + 1 == args.iters:
                print(f"epoch {epoch:3d} (iteration {i + 1:5d}): loss {loss.item():.4f}, "
                      f"train acc {history['train_acc'][-1]:.4f}, "
                      f"test acc {history['test_acc'][-1]:.4f}")
    history["iter_per_epoch"] = [iter_per_epoch]
    return history


def plot(history: dict[str, list[float]], path: Path, dpi: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 3.4), dpi=dpi)
    left, right = figure.subplots(1, 2)
    left.plot(np.arange(1, len(history["loss"]) + 1), history["loss"], lw=0.5)
    left.set_xlabel("iteration")
    left.set_ylabel("loss")
    left.set_title("loss per mini-batch (book fig. 4-11)")
    epochs = np.arange(1, len(history["train_acc"]) + 1)
    right.plot(epochs, history["train_acc"], label="train acc")
    right.plot(epochs, history["test_acc"], "--", label="test acc")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.set_ylim(0, 1.0)
    right.legend(loc="lower right")
    right.set_title("accuracy per epoch (book fig. 4-12)")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    start = time.perf_counter()
    history = train(args)
    seconds = time.perf_counter() - start
    path = plot(history, args.out / "ch04_accuracy.png", args.dpi)
    print(f"{args.iters} iterations in {seconds:.1f} s; final train acc "
          f"{history['train_acc'][-1]:.4f}, test acc {history['test_acc'][-1]:.4f}")
    print(f"wrote {path}")
    return {"history": history, "figure": path, "seconds": seconds}


if __name__ == "__main__":
    main()
