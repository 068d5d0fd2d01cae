"""Batch Normalization (section 6.3): training with and without it, across initial scales.

    python examples/book/ch06_batchnorm.py                  # both figures, about 30 s
    python examples/book/ch06_batchnorm.py --scales 4 --out /tmp/ch06

The textbook's set-up: the first 1000 training images, a 6-layer net (5 hidden layers of 100
ReLU units) whose weights all start with one standard deviation W, trained by SGD (lr 0.01)
for 20 epochs of 10 batches of 100; beside it the same net with nn.BatchNorm1d between each
hidden Linear and its ReLU (ε = 1e-6 as the textbook's), from the same weights, on the same
batches. The accuracy on the 1000 training images is measured before training and after every
epoch (BatchNorm with its running statistics, in evaluation mode).

Figures: the two nets at one scale (``--scale``, figure 6-18), written to ch06_batchnorm.png,
and at 16 scales W from 1 to 10⁻⁴ (figure 6-19), written to ch06_batchnorm_grid.png.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ch06_common as common  # noqa: E402

from minigrad import nn, optim  # noqa: E402


def run(data, scale: float, batchnorm: bool, *, epochs: int, hidden: int, layers: int,
        lr: float, batch_size: int, seed: int, eps: float = 1e-6) -> dict[str, np.ndarray]:
    """Train the net once from weights of standard deviation ``scale``; the curves of
    ``train_epochs`` (accuracy per epoch, loss per iteration)."""
    sizes = (data[0].shape[1],) + (hidden,) * (layers - 1) + (10,)
    net = common.mlp(sizes, "relu", float(scale), batchnorm=batchnorm, eps=eps,
                     rng=np.random.default_rng(seed))
    opt = optim.SGD(net.parameters(), lr=lr)
    # A net whose weights start far too large overflows on its way to NaN: that is the
    # experiment's point, not a warning to show.
    with np.errstate(over="ignore", invalid="ignore"):
        return common.train_epochs(net, opt, data, epochs=epochs, batch_size=batch_size,
                                   rng=np.random.default_rng(seed + 1))


def plot_pair(ax, normal: np.ndarray, with_bn: np.ndarray, title: str, legend: bool) -> None:
    epochs = np.arange(len(normal))
    every = max(len(normal) // 10, 1)
    ax.plot(epochs, with_bn, marker="o", markersize=3, markevery=every,
            label="Batch Normalization")
    ax.plot(epochs, normal, "--", marker="s", markersize=3, markevery=every,
            label="Normal (without BatchNorm)")
    ax.set_ylim(0, 1.0)
    ax.set_title(title, fontsize=9)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if legend:
        ax.legend(loc="center right", fontsize=8)


def main(argv: Sequence[str] | None = None) -> dict:
    """Train both nets at every scale and write both figures.

    Returns:
        ``{"scales": (S,), "normal": [curves per scale], "batchnorm": [curves per scale],
        "final": {scale: (normal accuracy, BatchNorm accuracy)}, "figures": [...]}``
    """
    def options(parser):
        parser.add_argument("--train", type=int, default=1000, help="training images")
        parser.add_argument("--epochs", type=int, default=20)
        parser.add_argument("--hidden", type=int, default=100, help="units per hidden layer")
        parser.add_argument("--layers", type=int, default=6, help="Linear layers in the net")
        parser.add_argument("--lr", type=float, default=0.01)
        parser.add_argument("--batch-size", type=int, default=100)
        parser.add_argument("--scales", type=int, default=16,
                            help="scales W in logspace(0, -4) for the grid")
        parser.add_argument("--scale", type=float, default=0.01,
                            help="the scale drawn alone (figure 6-18)")
        parser.add_argument("--eps", type=float, default=1e-6,
                            help="BatchNorm's ε (the textbook's 10e-7; PyTorch's is 1e-5)")

    args = common.arguments(__doc__, argv, options)
    if not common.has_batch_norm():
        raise SystemExit("ch06_batchnorm: this minigrad has neither nn.BatchNorm1d nor "
                         "minigrad.book.BatchNormalization")
    layer = "nn.BatchNorm1d" if hasattr(nn, "BatchNorm1d") else "minigrad.book.BatchNormalization"
    print(f"Batch Normalization by {layer}")
    x, t, _, _ = common.mnist(args.train)
    data = (x, t, x, t)  # the textbook measures the accuracy on the training images
    settings = dict(epochs=args.epochs, hidden=args.hidden, layers=args.layers, lr=args.lr,
                    batch_size=args.batch_size, seed=args.seed, eps=args.eps)
    scales = np.logspace(0, -4, num=args.scales)
    normal = [run(data, w, False, **settings) for w in scales]
    with_bn = [run(data, w, True, **settings) for w in scales]
    final = {}
    for w, a, b in zip(scales, normal, with_bn):
        final[float(w)] = (float(a["train_acc"][-1]), float(b["train_acc"][-1]))
        print(f"W={w:.3g}: train accuracy after {args.epochs} epochs "
              f"{a['train_acc'][-1]:.3f} without, {b['train_acc'][-1]:.3f} with BatchNorm")

    plt = common.pyplot()
    single_normal = run(data, args.scale, False, **settings)
    single_bn = run(data, args.scale, True, **settings)
    print(f"W={args.scale:.3g} (drawn alone): {single_normal['train_acc'][-1]:.3f} without, "
          f"{single_bn['train_acc'][-1]:.3f} with BatchNorm")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    plot_pair(ax, single_normal["train_acc"], single_bn["train_acc"], f"W={args.scale:g}",
              legend=True)
    ax.set_xlabel("epochs")
    ax.set_ylabel("accuracy")
    figures = [common.save(fig, args.out, "ch06_batchnorm.png")]

    cols = min(4, len(scales))
    rows = -(-len(scales) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.0 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(scales):
            ax.axis("off")
            continue
        plot_pair(ax, normal[i]["train_acc"], with_bn[i]["train_acc"], f"W={scales[i]:.3g}",
                  legend=i == len(scales) - 1)
        if i % cols:
            ax.set_yticks([])
        else:
            ax.set_ylabel("accuracy")
        if i < len(scales) - cols:
            ax.set_xticks([])
        else:
            ax.set_xlabel("epochs")
    fig.tight_layout()
    figures.append(common.save(fig, args.out, "ch06_batchnorm_grid.png"))
    return {"scales": scales, "normal": normal, "batchnorm": with_bn, "final": final,
            "single": (single_normal, single_bn), "figures": figures}


if __name__ == "__main__":
    main()
