"""Chapter 7 of "Deep Learning from Scratch": what a CNN's first layer learns.

    python examples/book/ch07_filters.py                     # PNGs in docs/book/img/
    python examples/book/ch07_filters.py --epochs 3 --out pictures

Trains the book's ``SimpleConvNet`` (conv 30×5×5 → ReLU → pool → affine 100 → ReLU → affine 10)
briefly with Adam on the MNIST subset shipped with minigrad (10,000 training and 2,000 test
images; nothing is downloaded), then writes:

    ch07_filters_before.png   the 30 first-layer filters at initialisation: noise (fig 7-24 left)
    ch07_filters_after.png    the same filters after training: edge and blob detectors (right)
    ch07_feature_maps.png     what conv1, relu1 and pool1 output for one test digit
    ch07_activations.png      the distribution of the two ReLU layers' outputs on test digits

Seeded: the same command gives the same pictures. About 40 seconds on two cores at the defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's minigrad

from minigrad import nn, optim, viz  # noqa: E402
from minigrad.data import DataLoader, load_mnist  # noqa: E402
from minigrad.models import SimpleConvNet  # noqa: E402

IMG = Path(__file__).resolve().parents[2] / "docs" / "book" / "img"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--epochs", type=int, default=4, help="passes over the training images "
                    "(default 4)")
    ap.add_argument("--train-images", type=int, default=10_000, metavar="N",
                    help="train on the first N of the subset's 10,000 images (default all)")
    ap.add_argument("--test-images", type=int, default=2_000, metavar="N",
                    help="test on the first N of the subset's 2,000 images (default all)")
    ap.add_argument("--batch-size", type=int, default=100, help="default 100")
    ap.add_argument("--init", type=float, default=0.01,
                    help="standard deviation of the initial weights (default 0.01, the book's "
                         "weight_init_std; small, so training visibly shapes the filters)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    ap.add_argument("--digit", type=int, default=0,
                    help="which test image to follow through the network (default 0)")
    ap.add_argument("--seed", type=int, default=0, help="weights and batch order (default 0)")
    ap.add_argument("--out", type=Path, default=IMG, help=f"folder for the PNGs (default {IMG})")
    ap.add_argument("--dpi", type=int, default=80, help="resolution of the PNGs (default 80)")
    args = ap.parse_args(argv)
    for name in ("epochs", "train_images", "test_images", "batch_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def train(model: nn.Module, x, t, args: argparse.Namespace) -> None:
    """Adam on mini-batches; prints the mean loss of each epoch."""
    opt = optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(x, t, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    model.train()
    for epoch in range(1, args.epochs + 1):
        start, total, count = time.perf_counter(), 0.0, 0
        for xb, tb in loader:
            loss = model.loss(xb, tb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(xb), count + len(xb)
        print(f"epoch {epoch}/{args.epochs}: train loss {total / count:.4f} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> dict:
    """Train, draw, and return the test accuracy and the files written."""
    args = parse_args(argv)
    (x_train, t_train), (x_test, t_test) = load_mnist(subset=True)
    x_train, t_train = x_train[:args.train_images], t_train[:args.train_images]
    x_test, t_test = x_test[:args.test_images], t_test[:args.test_images]
    if not 0 <= args.digit < len(x_test):
        raise SystemExit(f"--digit must be between 0 and {len(x_test) - 1}, got {args.digit}")
    out, dpi = args.out, args.dpi
    print(f"SimpleConvNet on {len(x_train):,} training and {len(x_test):,} test images of the "
          f"MNIST subset")

    nn.manual_seed(args.seed)
    model = SimpleConvNet(init=args.init)
    written = [out / "ch07_filters_before.png", out / "ch07_filters_after.png",
               out / "ch07_feature_maps.png", out / "ch07_activations.png"]
    viz.show_filters(model.conv1.weight, title="conv1 before training", path=written[0],
                     dpi=dpi)

    train(model, x_train, t_train, args)
    model.eval()
    accuracy = model.accuracy(x_test, t_test)
    print(f"test accuracy {accuracy:.4f}")

    viz.show_filters(model.conv1.weight, title="conv1 after training", path=written[1], dpi=dpi)
    viz.show_feature_maps(model, x_test[args.digit], max_channels=30, ncols=15,
                          path=written[2], dpi=dpi)
    with viz.record_activations(model) as record:  # relu1 and relu2
        model.predict(x_test[:500])
    viz.plot_activation_histograms(record, log=True, title="ReLU outputs on 500 test digits",
                                   path=written[3], dpi=dpi)
    for path in written:
        print("wrote", path)
    return {"accuracy": accuracy, "written": written}


if __name__ == "__main__":
    main()
