"""Over-fitting and two remedies (section 6.4): weight decay and dropout.

    python examples/book/ch06_regularization.py             # the three figures, about 30 s
    python examples/book/ch06_regularization.py --epochs 100 --out /tmp/ch06

The textbook's set-up: only the first 300 training images, a 7-layer net (6 hidden layers of
100 ReLU units, He initialisation), SGD with lr 0.01, batches of 100 (3 per epoch), the accuracy
on those 300 images and on the test images measured before training and after every epoch.

1. No regularisation, 200 epochs: the training accuracy reaches 1.0 and the test accuracy stays
   far below (figure 6-20), written to ch06_overfit.png.
2. Weight decay λ = 0.1 on the Linear weights (the textbook's ½·λ·ΣW² added to the loss, given to
   SGD as ``weight_decay`` in a parameter group of the weights only), 200 epochs (figure 6-21),
   written to ch06_weight_decay.png.
3. Dropout p = 0.2 after every hidden activation, 300 epochs, beside the same net without
   dropout (figure 6-23), written to ch06_dropout.png.

Every run starts from the same weights and sees the same batches.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ch06_common as common  # noqa: E402

from minigrad import optim  # noqa: E402


def run(data, *, epochs: int, hidden: int, layers: int, lr: float, batch_size: int,
        weight_decay: float = 0.0, dropout: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Train the textbook's over-fitting net once; the accuracy curves (``train_epochs``)."""
    sizes = (data[0].shape[1],) + (hidden,) * (layers - 1) + (10,)
    net = common.mlp(sizes, "relu", "he", dropout=dropout, rng=np.random.default_rng(seed))
    params = common.weight_decay_groups(net, weight_decay) if weight_decay else net.parameters()
    opt = optim.SGD(params, lr=lr)
    return common.train_epochs(net, opt, data, epochs=epochs, batch_size=batch_size,
                               rng=np.random.default_rng(seed + 1))


def gap(curves: dict[str, np.ndarray], last: int = 10) -> tuple[float, float, float]:
    """(train accuracy, test accuracy, their difference), each averaged over the last
    ``last`` epochs, where one epoch's value of a few hundred images is noisy."""
    train = float(curves["train_acc"][-last:].mean())
    test = float(curves["test_acc"][-last:].mean())
    return train, test, train - test


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the three experiments and write the three figures.

    Returns:
        ``{"plain": curves (over max(epochs, dropout_epochs) epochs), "weight_decay": curves,
        "dropout": curves, "gap": {run: (train, test, train − test) at its end},
        "figures": [...]}``; curves as ``ch06_common.train_epochs`` returns them.
    """
    def options(parser):
        parser.add_argument("--train", type=int, default=300, help="training images")
        parser.add_argument("--test", type=int, default=None,
                            help="use only the first TEST test images")
        parser.add_argument("--epochs", type=int, default=200,
                            help="epochs without regularisation and with weight decay")
        parser.add_argument("--dropout-epochs", type=int, default=300)
        parser.add_argument("--hidden", type=int, default=100, help="units per hidden layer")
        parser.add_argument("--layers", type=int, default=7, help="Linear layers in the net")
        parser.add_argument("--lr", type=float, default=0.01)
        parser.add_argument("--batch-size", type=int, default=100)
        parser.add_argument("--weight-decay", type=float, default=0.1, help="λ")
        parser.add_argument("--dropout", type=float, default=0.2, help="drop probability")

    args = common.arguments(__doc__, argv, options)
    x, t, x_test, t_test = common.mnist(args.train)
    data = (x, t, x_test[:args.test], t_test[:args.test])
    settings = dict(hidden=args.hidden, layers=args.layers, lr=args.lr,
                    batch_size=args.batch_size, seed=args.seed)
    longest = max(args.epochs, args.dropout_epochs)
    # One run without regularisation serves both figures: its first epochs are exactly a
    # shorter run's (the same weights, the same batches).
    plain = run(data, epochs=longest, **settings)
    decayed = run(data, epochs=args.epochs, weight_decay=args.weight_decay, **settings)
    dropped = run(data, epochs=args.dropout_epochs, dropout=args.dropout, **settings)
    short = {k: v[:args.epochs + 1] for k, v in plain.items() if k != "loss"}
    gaps = {"plain": gap(short), "weight_decay": gap(decayed), "dropout": gap(dropped),
            "plain_long": gap(plain)}
    for name, (train, test, diff) in gaps.items():
        print(f"{name:13s} train {train:.3f}  test {test:.3f}  gap {diff:.3f}  "
              f"(mean of the last 10 epochs)")

    plt = common.pyplot()
    figures = []
    for name, curves, title in [
            ("ch06_overfit.png", short, "no regularisation"),
            ("ch06_weight_decay.png", decayed, f"weight decay λ={args.weight_decay}")]:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        common.plot_accuracy(ax, {"train": curves["train_acc"], "test": curves["test_acc"]},
                             title)
        figures.append(common.save(fig, args.out, name))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    common.plot_accuracy(axes[0], {"train": dropped["train_acc"], "test": dropped["test_acc"]},
                         f"dropout p={args.dropout}")
    common.plot_accuracy(axes[1], {"train": plain["train_acc"][:args.dropout_epochs + 1],
                                   "test": plain["test_acc"][:args.dropout_epochs + 1]},
                         "without dropout")
    figures.append(common.save(fig, args.out, "ch06_dropout.png"))
    return {"plain": plain, "weight_decay": decayed, "dropout": dropped, "gap": gaps,
            "figures": figures}


if __name__ == "__main__":
    main()
