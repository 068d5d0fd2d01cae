"""Initial weights (section 6.2): what they do to the activations and to learning.

    python examples/book/ch06_init.py                       # all figures, about 25 s
    python examples/book/ch06_init.py --iterations 500 --out /tmp/ch06

1. 1000 random inputs (standard normal, 100 features) through 5 layers of 100 units without
   biases, weights drawn by nn.Linear's ``init=``: the histogram of each layer's activations.
   Sigmoid with std 1, std 0.01 and Xavier √(1/n) (figures 6-10, 6-11, 6-13), written to
   ch06_init_sigmoid.png; ReLU with std 0.01, Xavier and He √(2/n) (figure 6-14), written to
   ch06_init_relu.png.
2. On MNIST (the subset shipped with minigrad), the textbook's 5-layer ReLU net of 100 units
   trained by SGD (lr 0.01, batches of 128) from std 0.01, Xavier and He: the training loss per
   iteration, smoothed (figure 6-15), written to ch06_init_mnist.png.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ch06_common as common  # noqa: E402

from minigrad import Tensor, nn, no_grad, optim  # noqa: E402

# (activation, init, label), in the order of the textbook's figures.
HISTOGRAMS = {
    "sigmoid": [(1.0, "std=1"), (0.01, "std=0.01"), ("xavier", "Xavier")],
    "relu": [(0.01, "std=0.01"), ("xavier", "Xavier"), ("he", "He")],
}
MNIST_INITS = [(0.01, "std=0.01"), ("xavier", "Xavier"), ("he", "He")]


def activations(activation: str, init: str | float, *, inputs: int = 1000, units: int = 100,
                layers: int = 5, seed: int = 0) -> list[np.ndarray]:
    """The outputs of each of ``layers`` Linear(units, units, bias=False) + activation layers
    for ``inputs`` standard-normal rows: a list of (inputs, units) arrays, first layer first."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((inputs, units)).astype(np.float32)
    out = []
    with no_grad():
        h = Tensor(x)
        for _ in range(layers):
            layer = nn.Sequential(nn.Linear(units, units, bias=False, init=init, rng=rng),
                                  common.ACTIVATIONS[activation]())
            h = layer(h)
            out.append(h.data.copy())
    return out


def mnist_losses(iterations: int, batch_size: int, hidden: int, layers: int, seed: int,
                 train: int | None = None) -> dict[str, np.ndarray]:
    """Per-iteration training loss of the textbook's ReLU MLP for each initialisation."""
    x, t, _, _ = common.mnist(train)
    losses = {}
    for init, label in MNIST_INITS:
        net = common.mlp((784,) + (hidden,) * (layers - 1) + (10,), "relu", init,
                         rng=np.random.default_rng(seed))
        opt = optim.SGD(net.parameters(), lr=0.01)
        losses[label] = common.train_losses(net, opt, x, t, iterations=iterations,
                                            batch_size=batch_size,
                                            rng=np.random.default_rng(seed + 1))
    return losses


def plot_histograms(activation: str, outputs: dict[str, list[np.ndarray]], out: Path) -> Path:
    plt = common.pyplot()
    rows, cols = len(outputs), len(next(iter(outputs.values())))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.0 * rows), squeeze=False)
    for r, (label, layers) in enumerate(outputs.items()):
        ylim = 0.07 * layers[0].size  # the textbook's 7000 for 1000 × 100 activations
        for c, a in enumerate(layers):
            ax = axes[r, c]
            ax.hist(a.ravel(), 30, range=(0, 1))
            ax.set_ylim(0, ylim)
            ax.set_title(f"{c + 1}-layer", fontsize=9)
            if c:
                ax.set_yticks([])
            else:
                ax.set_ylabel(f"{activation}, {label}", fontsize=9)
    fig.tight_layout()
    return common.save(fig, out, f"ch06_init_{activation}.png")


def plot_losses(losses: dict[str, np.ndarray], out: Path) -> Path:
    markers = {"std=0.01": "o", "Xavier": "s", "He": "D"}
    return common.plot_losses(losses, markers, 2.5, out, "ch06_init_mnist.png")


def main(argv: Sequence[str] | None = None) -> dict:
    """Run both experiments and write the three figures.

    Returns:
        ``{"activations": {(activation, label): [per-layer arrays]},
        "std": {(activation, label): [per-layer std]}, "losses": {label: (iterations,)},
        "final_loss": {label: mean loss of the last tenth}, "figures": [...]}``
    """
    def options(parser):
        parser.add_argument("--inputs", type=int, default=1000, help="random input rows")
        parser.add_argument("--units", type=int, default=100, help="units per layer")
        parser.add_argument("--depth", type=int, default=5, help="layers in the histograms")
        parser.add_argument("--iterations", type=int, default=2000, help="MNIST iterations")
        parser.add_argument("--batch-size", type=int, default=128)
        parser.add_argument("--hidden", type=int, default=100, help="units per hidden layer")
        parser.add_argument("--layers", type=int, default=5, help="Linear layers in the net")
        parser.add_argument("--train", type=int, default=None,
                            help="use only the first TRAIN training images")

    args = common.arguments(__doc__, argv, options)
    acts, stds, figures = {}, {}, []
    for activation, inits in HISTOGRAMS.items():
        outputs = {}
        for init, label in inits:
            outputs[label] = activations(activation, init, inputs=args.inputs,
                                         units=args.units, layers=args.depth, seed=args.seed)
            acts[activation, label] = outputs[label]
            stds[activation, label] = [float(a.std()) for a in outputs[label]]
            print(f"{activation:7s} {label:8s} std per layer: "
                  + " ".join(f"{s:.3g}" for s in stds[activation, label]))
        figures.append(plot_histograms(activation, outputs, args.out))
    losses = mnist_losses(args.iterations, args.batch_size, args.hidden, args.layers, args.seed,
                          args.train)
    tail = max(args.iterations // 10, 1)
    final = {label: float(loss[-tail:].mean()) for label, loss in losses.items()}
    for label, value in final.items():
        print(f"{label:8s} mean loss over the last {tail} iterations: {value:.4f}")
    figures.append(plot_losses(losses, args.out))
    return {"activations": acts, "std": stds, "losses": losses, "final_loss": final,
            "figures": figures}


if __name__ == "__main__":
    main()
