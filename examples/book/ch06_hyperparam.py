"""Random search of hyperparameters on a validation split (section 6.5).

    python examples/book/ch06_hyperparam.py                 # 100 trials, about a minute
    python examples/book/ch06_hyperparam.py --trials 30 --out /tmp/ch06

The textbook's set-up: the first 500 training images, shuffled, 20% of them (100) kept apart
for validation and the other 400 trained on. Each trial draws a learning rate from
10^U(−6, −2) and a weight decay from 10^U(−8, −4) (on the Linear weights, the textbook's
``weight_decay_lambda``), trains the 7-layer net (6 hidden layers of 100 ReLU units, He
initialisation) by SGD for 50 epochs of batches of 100, and records the training and validation
accuracy after every epoch. The test images are never looked at.

Figures: the validation (solid) and training (dashed) accuracy of the best 20 trials, best
first (figure 6-24), written to ch06_hyperparam.png; every trial's final validation accuracy
over the (learning rate, weight decay) plane, written to ch06_hyperparam_scatter.png.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ch06_common as common  # noqa: E402

from minigrad import optim  # noqa: E402


def split(x: np.ndarray, t: np.ndarray, validation: float, rng: np.random.Generator):
    """Shuffle, then keep the first ``validation`` fraction apart:
    (x_train, t_train, x_val, t_val)."""
    order = rng.permutation(len(x))
    x, t = x[order], t[order]
    n = int(len(x) * validation)
    return x[n:], t[n:], x[:n], t[:n]


def trial(data, lr: float, weight_decay: float, *, epochs: int, hidden: int, layers: int,
          batch_size: int, seed: int) -> dict[str, np.ndarray]:
    """Train once with these hyperparameters; the accuracy curves (``train_epochs``; its
    ``test_acc`` is the validation accuracy here)."""
    sizes = (data[0].shape[1],) + (hidden,) * (layers - 1) + (10,)
    net = common.mlp(sizes, "relu", "he", rng=np.random.default_rng(seed))
    opt = optim.SGD(common.weight_decay_groups(net, weight_decay), lr=lr)
    return common.train_epochs(net, opt, data, epochs=epochs, batch_size=batch_size,
                               rng=np.random.default_rng(seed + 1))


def search(data, trials: int, *, lr_range=(-6.0, -2.0), decay_range=(-8.0, -4.0),
           seed: int = 0, **settings) -> list[dict]:
    """``trials`` random draws of (lr, weight decay), log-uniform in the given exponent ranges,
    each trained by :func:`trial`. Returns one dict per trial (``lr``, ``weight_decay``,
    ``val_acc``, ``train_acc``), best final validation accuracy first."""
    rng = np.random.default_rng(seed)
    results = []
    for i in range(trials):
        lr = 10 ** rng.uniform(*lr_range)
        weight_decay = 10 ** rng.uniform(*decay_range)
        curves = trial(data, lr, weight_decay, seed=seed + 1000 + i, **settings)
        results.append({"lr": lr, "weight_decay": weight_decay,
                        "val_acc": curves["test_acc"], "train_acc": curves["train_acc"]})
    # Stable sort: trials with the same final accuracy keep their drawing order.
    return sorted(results, key=lambda r: -r["val_acc"][-1])


def plot_best(results: list[dict], shown: int, out: Path) -> Path:
    plt = common.pyplot()
    shown = min(shown, len(results))
    cols = min(5, shown)
    rows = -(-shown // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.0 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= shown:
            ax.axis("off")
            continue
        r = results[i]
        epochs = np.arange(len(r["val_acc"]))
        ax.plot(epochs, r["val_acc"])
        ax.plot(epochs, r["train_acc"], "--")
        ax.set_ylim(0.0, 1.0)
        ax.set_title(f"Best-{i + 1}", fontsize=9)
        ax.set_xticks([])
        if i % cols:
            ax.set_yticks([])
    fig.tight_layout()
    return common.save(fig, out, "ch06_hyperparam.png")


def plot_scatter(results: list[dict], out: Path) -> Path:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    dots = ax.scatter([r["lr"] for r in results], [r["weight_decay"] for r in results],
                      c=[r["val_acc"][-1] for r in results], cmap="viridis", vmin=0, vmax=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("weight decay")
    fig.colorbar(dots, ax=ax, label="final validation accuracy")
    return common.save(fig, out, "ch06_hyperparam_scatter.png")


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the search and write both figures.

    Returns:
        ``{"results": [trial dicts, best first], "figures": [...]}``
    """
    def options(parser):
        parser.add_argument("--trials", type=int, default=100)
        parser.add_argument("--images", type=int, default=500,
                            help="training images used (validation included)")
        parser.add_argument("--validation", type=float, default=0.2,
                            help="fraction kept for validation")
        parser.add_argument("--epochs", type=int, default=50)
        parser.add_argument("--hidden", type=int, default=100, help="units per hidden layer")
        parser.add_argument("--layers", type=int, default=7, help="Linear layers in the net")
        parser.add_argument("--batch-size", type=int, default=100)
        parser.add_argument("--show", type=int, default=20, help="best trials drawn")

    args = common.arguments(__doc__, argv, options)
    x, t, _, _ = common.mnist(args.images)
    data = split(x, t, args.validation, np.random.default_rng(args.seed))
    results = search(data, args.trials, seed=args.seed, epochs=args.epochs, hidden=args.hidden,
                     layers=args.layers, batch_size=args.batch_size)
    for i, r in enumerate(results[:5]):
        print(f"Best-{i + 1} (val acc: {r['val_acc'][-1]:.2f}) | lr: {r['lr']:.3g}, "
              f"weight decay: {r['weight_decay']:.3g}")
    best = results[:args.show]
    lrs, decays = [r["lr"] for r in best], [r["weight_decay"] for r in best]
    print(f"the best {len(best)}: lr from {min(lrs):.3g} to {max(lrs):.3g}, weight decay from "
          f"{min(decays):.3g} to {max(decays):.3g}")
    figures = [plot_best(results, args.show, args.out), plot_scatter(results, args.out)]
    return {"results": results, "figures": figures}


if __name__ == "__main__":
    main()
