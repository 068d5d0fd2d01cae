"""Chapter 8 of "Deep Learning from Scratch": the deep CNN and the digits it gets wrong.

    python examples/book/ch08_deep_convnet.py        # trains briefly on the subset (~1.5 min)
    python examples/book/ch08_deep_convnet.py --checkpoint runs/deep/checkpoint.npz

``DeepConvNet`` is the book's chapter-8 network: six 3×3 convolutions (16, 16, 32, 32, 64, 64
filters) with ReLU, a 2×2 max pooling after every second one, then affine 1024 → 50, ReLU,
dropout, affine 50 → 10, dropout. The book reaches 99.38% test accuracy with it.

Without ``--checkpoint`` the network is trained briefly with Adam on the start of the MNIST
subset shipped with minigrad (nothing is downloaded) and tested on the subset's test images;
it writes ``ch08_subset_misclassified.png``.

With ``--checkpoint PATH`` the trained weights are loaded instead: a ``checkpoint.npz`` written
by ``examples/train_mnist.py --model deep`` (its ``model.*`` entries), a bare model state dict
(``minigrad.save(model.state_dict(), path)``), or the book's W1…W8, b1…b8. The test set is full
MNIST when it is found (``--data-dir``, ``$MINIGRAD_DATA`` or ``~/.cache/minigrad/mnist``),
else the subset's. It writes ``ch08_misclassified.png`` and, from the ``history.json`` beside
the checkpoint (or ``--history PATH``), the learning curves ``ch08_history.png`` (with the
learning rate of each epoch when the history has one).

The misclassified figure is the book's figure 8-6: each wrong digit with its true label at the
top left and the network's answer at the bottom right.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's minigrad

import minigrad  # noqa: E402
from minigrad import nn, optim, viz  # noqa: E402
from minigrad.data import DataLoader, find_mnist, load_mnist  # noqa: E402
from minigrad.models import DeepConvNet  # noqa: E402

IMG = Path(__file__).resolve().parents[2] / "docs" / "book" / "img"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--checkpoint", type=Path, default=None, metavar="PATH",
                    help="load trained weights from this .npz instead of training")
    ap.add_argument("--history", type=Path, default=None, metavar="PATH",
                    help="history.json to draw the learning curves from (default: the one "
                         "beside --checkpoint, if any)")
    ap.add_argument("--data-dir", default=None,
                    help="folder holding full MNIST for the test set (with --checkpoint)")
    ap.add_argument("--epochs", type=int, default=1, help="training passes (default 1)")
    ap.add_argument("--train-images", type=int, default=5_000, metavar="N",
                    help="train on the first N subset images (default 5,000)")
    ap.add_argument("--test-images", type=int, default=None, metavar="N",
                    help="test on the first N test images (default all)")
    ap.add_argument("--batch-size", type=int, default=100, help="default 100")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    ap.add_argument("--max-images", type=int, default=20,
                    help="misclassified digits to draw (default 20, as the book)")
    ap.add_argument("--seed", type=int, default=0, help="weights, dropout and batch order")
    ap.add_argument("--out", type=Path, default=IMG, help=f"folder for the PNGs (default {IMG})")
    ap.add_argument("--dpi", type=int, default=80, help="resolution of the PNGs (default 80)")
    args = ap.parse_args(argv)
    for name in ("epochs", "train_images", "test_images", "batch_size", "max_images"):
        value = getattr(args, name)
        if value is not None and value < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def load_weights(model: DeepConvNet, path: Path) -> str:
    """Load ``path`` into ``model``; returns which kind of file it was."""
    try:
        flat = minigrad.load(path)
    except (OSError, ValueError) as error:
        raise SystemExit(f"--checkpoint: cannot read {path}: {error}") from None
    model_entries = {k[len("model."):]: v for k, v in flat.items() if k.startswith("model.")}
    try:
        if model_entries:
            model.load_state_dict(model_entries)
            return "train_mnist checkpoint"
        if "W1" in flat:
            model.load_book_params(flat)
            return "the book's W1…W8, b1…b8"
        model.load_state_dict(flat)
        return "model state dict"
    except (KeyError, ValueError) as error:
        raise SystemExit(f"--checkpoint: {path} does not hold DeepConvNet weights: "
                         f"{error}") from None


def train(model: nn.Module, x: np.ndarray, t: np.ndarray, args: argparse.Namespace) -> None:
    """Adam on mini-batches; prints the running loss now and then."""
    opt = optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(x, t, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    model.train()
    for epoch in range(1, args.epochs + 1):
        start, total, count = time.perf_counter(), 0.0, 0
        for step, (xb, tb) in enumerate(loader, start=1):
            loss = model.loss(xb, tb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(xb), count + len(xb)
            if step % 10 == 0 or step == len(loader):
                print(f"epoch {epoch}/{args.epochs}, batch {step}/{len(loader)}: loss "
                      f"{total / count:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)


def load_test_set(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """The test images: full MNIST's when a checkpoint is evaluated and it is found."""
    folder = find_mnist(args.data_dir) if args.checkpoint is not None else None
    if folder is not None:
        _, (x, t) = load_mnist(folder, download=False)
        kind = "full MNIST"
    else:
        _, (x, t) = load_mnist(subset=True)
        kind = "the MNIST subset"
    if args.test_images is not None:
        x, t = x[:args.test_images], t[:args.test_images]
    return x, t, kind


def main(argv: list[str] | None = None) -> dict:
    """Train or load, evaluate, draw; returns the accuracy, the count wrong and the files."""
    args = parse_args(argv)
    nn.manual_seed(args.seed)
    model = DeepConvNet()
    x_test, t_test, test_kind = load_test_set(args)
    if args.checkpoint is not None:
        print(f"DeepConvNet: {load_weights(model, args.checkpoint)} from {args.checkpoint}")
        name = "ch08_misclassified.png"
    else:
        (x_train, t_train), _ = load_mnist(subset=True)
        x_train, t_train = x_train[:args.train_images], t_train[:args.train_images]
        print(f"DeepConvNet ({model.num_parameters():,} parameters): training on "
              f"{len(x_train):,} images of the MNIST subset")
        train(model, x_train, t_train, args)
        name = "ch08_subset_misclassified.png"

    model.eval()
    predicted = model.predict(x_test, batch_size=500).argmax(axis=1)
    wrong = np.flatnonzero(predicted != t_test)
    accuracy = 1 - len(wrong) / len(x_test)
    print(f"test accuracy on {len(x_test):,} images of {test_kind}: {100 * accuracy:.2f}% "
          f"({len(wrong)} wrong)")
    written = [args.out / name]
    viz.plot_misclassified(model, x_test, t_test, predicted=predicted, max_images=args.max_images,
                           title=f"DeepConvNet on {test_kind}: {len(wrong)} of {len(x_test):,} "
                                 f"wrong ({100 * accuracy:.2f}% right)",
                           path=written[0], dpi=args.dpi)

    history = args.history
    if history is None and args.checkpoint is not None:
        beside = args.checkpoint.with_name("history.json")
        history = beside if beside.is_file() else None
    if history is not None:
        try:
            curves = json.loads(Path(history).read_text())
        except (OSError, ValueError) as error:
            raise SystemExit(f"--history: cannot read {history}: {error}") from None
        written.append(args.out / "ch08_history.png")
        viz.plot_history(curves, path=written[-1], title="DeepConvNet on MNIST",
                         lr_key="lr" if "lr" in curves else None)
    for path in written:
        print("wrote", path)
    return {"accuracy": accuracy, "wrong": len(wrong), "test_images": len(x_test),
            "written": written}


if __name__ == "__main__":
    main()
