"""The textbook's four optimisers (section 6.1): SGD, Momentum, AdaGrad and Adam.

    python examples/book/ch06_optimizers.py                 # both figures, about 30 s
    python examples/book/ch06_optimizers.py --iterations 500 --out /tmp/ch06

1. On f(x, y) = x²/20 + y², from (−7, 2), 30 steps each with the textbook's learning rates
   (SGD 0.95, Momentum 0.1, AdaGrad 1.5, Adam 0.3): the four paths over the contours of f
   (figure 6-8), written to ch06_optimizers_path.png. x and y are 0-d Parameters.
2. On MNIST (the subset shipped with minigrad), the textbook's 5-layer net of 100 units
   (He initialisation), batches of 128, each optimiser with the textbook's default learning
   rate (SGD 0.01, Momentum 0.01, AdaGrad 0.01, Adam 0.001): the training loss per iteration,
   smoothed (figure 6-9), written to ch06_optimizers_mnist.png. The four nets start from the
   same weights and see the same batches.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ch06_common as common  # noqa: E402

from minigrad import nn, optim  # noqa: E402

START = (-7.0, 2.0)
PATH_LRS = {"SGD": 0.95, "Momentum": 0.1, "AdaGrad": 1.5, "Adam": 0.3}
MNIST_LRS = {"SGD": 0.01, "Momentum": 0.01, "AdaGrad": 0.01, "Adam": 0.001}
OPTIMIZERS = {"SGD": optim.SGD, "Momentum": optim.Momentum, "AdaGrad": optim.AdaGrad,
              "Adam": optim.Adam}


def f(x, y):
    """The textbook's bowl, elongated along x: f(x, y) = x²/20 + y²."""
    return x * x / 20 + y * y


def trajectory(name: str, lr: float, steps: int = 30) -> np.ndarray:
    """The (x, y) positions of ``steps`` updates of optimiser ``name`` from (−7, 2):
    an array (steps + 1, 2), the start first."""
    x, y = nn.Parameter(START[0], dtype=np.float64), nn.Parameter(START[1], dtype=np.float64)
    opt = OPTIMIZERS[name]([x, y], lr=lr)
    path = [START]
    for _ in range(steps):
        opt.zero_grad()
        f(x, y).backward()
        opt.step()
        path.append((float(x.data), float(y.data)))
    return np.array(path)


def mnist_losses(iterations: int, batch_size: int, hidden: int, layers: int, seed: int,
                 train: int | None = None) -> dict[str, np.ndarray]:
    """Per-iteration training loss of the textbook's MLP for each optimiser."""
    x, t, _, _ = common.mnist(train)
    losses = {}
    for name, lr in MNIST_LRS.items():
        net = common.mlp((784,) + (hidden,) * (layers - 1) + (10,), "relu", "he",
                         rng=np.random.default_rng(seed))
        opt = OPTIMIZERS[name](net.parameters(), lr=lr)
        losses[name] = common.train_losses(net, opt, x, t, iterations=iterations,
                                           batch_size=batch_size,
                                           rng=np.random.default_rng(seed + 1))
    return losses


def plot_paths(paths: dict[str, np.ndarray], out: Path) -> Path:
    plt = common.pyplot()
    grid_x, grid_y = np.meshgrid(np.arange(-10, 10, 0.01), np.arange(-5, 5, 0.01))
    z = f(grid_x, grid_y)
    z[z > 7] = 0  # the textbook's trick for a few clean contour lines
    fig, axes = plt.subplots(2, 2, figsize=(8, 7))
    for ax, (name, path) in zip(axes.flat, paths.items()):
        ax.contour(grid_x, grid_y, z)
        ax.plot(path[:, 0], path[:, 1], "o-", color="red", markersize=3)
        ax.plot(0, 0, "+", color="black")
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
        ax.set_title(f"{name} (lr={PATH_LRS[name]})")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    fig.tight_layout()
    return common.save(fig, out, "ch06_optimizers_path.png")


def plot_losses(losses: dict[str, np.ndarray], out: Path) -> Path:
    markers = {"SGD": "o", "Momentum": "x", "AdaGrad": "s", "Adam": "D"}
    return common.plot_losses(losses, markers, 1, out, "ch06_optimizers_mnist.png")


def main(argv: Sequence[str] | None = None) -> dict:
    """Run both experiments and write both figures.

    Returns:
        ``{"paths": {name: (steps + 1, 2)}, "losses": {name: (iterations,)},
        "final_loss": {name: mean loss of the last tenth of the iterations}, "figures": [...]}``
    """
    def options(parser):
        parser.add_argument("--steps", type=int, default=30, help="steps on f(x, y)")
        parser.add_argument("--iterations", type=int, default=2000, help="MNIST iterations")
        parser.add_argument("--batch-size", type=int, default=128)
        parser.add_argument("--hidden", type=int, default=100, help="units per hidden layer")
        parser.add_argument("--layers", type=int, default=5, help="Linear layers in the net")
        parser.add_argument("--train", type=int, default=None,
                            help="use only the first TRAIN training images")

    args = common.arguments(__doc__, argv, options)
    paths = {name: trajectory(name, lr, args.steps) for name, lr in PATH_LRS.items()}
    for name, path in paths.items():
        print(f"{name:9s} ends at ({path[-1, 0]: .4f}, {path[-1, 1]: .4f}), "
              f"distance {np.hypot(*path[-1]):.4f} from the minimum (start {np.hypot(*START):.3f})")
    losses = mnist_losses(args.iterations, args.batch_size, args.hidden, args.layers, args.seed,
                          args.train)
    tail = max(args.iterations // 10, 1)
    final = {name: float(loss[-tail:].mean()) for name, loss in losses.items()}
    for name, value in final.items():
        print(f"{name:9s} mean loss over the last {tail} iterations: {value:.4f}")
    figures = [plot_paths(paths, args.out), plot_losses(losses, args.out)]
    return {"paths": paths, "losses": losses, "final_loss": final, "figures": figures}


if __name__ == "__main__":
    main()
