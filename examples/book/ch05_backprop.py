"""Chapter 5's gradient check: backpropagation against the numerical gradient of TwoLayerNet.

    python examples/book/ch05_backprop.py                  # the book's gradient_check.py
    python examples/book/ch05_backprop.py --hidden 3       # a quick look

The book's ``gradient_check.py`` (5.7.3): a 784-50-10 ``TwoLayerNet`` (weights from
N(0, 0.01²)), the first 3 training images with one-hot labels, the gradient of the loss by
``numerical_gradient`` (central differences with h = 1e-4, two forward passes per parameter
element: 2 × 39,760 here) and by ``gradient`` (one forward and one backward pass on
minigrad's tape), and for each parameter the mean absolute difference of the two.
Everything is float64, as the book's NumPy arrays are.

The book's loss is −log(y + δ) with δ = 1e-7, and its backward is the gradient without δ:
the two differ by a factor y / (y + δ), about 1 − 1e-6 where the untrained network gives
y ≈ 0.1, so with δ = 1e-7 the differences are about 1e-6 of the gradient (b2: ~1e-7). With
δ = 0 only the central difference's own error is left (~1e-10 and below). The check runs
once per ``--delta`` (default: both).

Prints the table (also as Markdown) and writes ``ch05_gradcheck.png`` (the differences on a
log scale) and ``ch05_graph.png`` (the tape of the network's loss, drawn by ``minigrad.viz``)
into ``--out``.
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

from minigrad import book, viz
from minigrad.data import load_mnist

DEFAULT_OUT = Path("docs/book/img")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=3, help="training images checked (3)")
    ap.add_argument("--hidden", type=int, default=50, help="hidden units (50)")
    ap.add_argument("--weight-init-std", type=float, default=0.01,
                    help="standard deviation of the initial weights (0.01)")
    ap.add_argument("--delta", type=float, nargs="+", default=[1e-7, 0.0],
                    help="the δ of the loss's log(y + δ), one check per value (default: the "
                         "book's 1e-7, then 0)")
    ap.add_argument("--seed", type=int, default=0, help="seeds the weights")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="folder for ch05_gradcheck.png (default: docs/book/img, from the "
                         "repository's root)")
    ap.add_argument("--dpi", type=int, default=80, help="resolution of the PNG")
    args = ap.parse_args(argv)
    for name in ("batch", "hidden"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    return args


def gradient_check(args: argparse.Namespace, delta: float) -> dict[str, dict[str, float]]:
    """For each parameter: the mean |backprop − numerical|, the largest, and the mean |grad|,
    with ``delta`` in the loss."""
    (x_train, t_train), _ = load_mnist(subset=True, flatten=True, one_hot=True)
    x_batch, t_batch = x_train[:args.batch], t_train[:args.batch]
    network = book.TwoLayerNet(784, args.hidden, 10, weight_init_std=args.weight_init_std,
                               rng=np.random.default_rng(args.seed))
    network.loss_delta = delta
    start = time.perf_counter()
    grad_numerical = network.numerical_gradient(x_batch, t_batch)
    numerical_s = time.perf_counter() - start
    start = time.perf_counter()
    grad_backprop = network.gradient(x_batch, t_batch)
    backprop_s = time.perf_counter() - start
    rows = {}
    for key in ("W1", "b1", "W2", "b2"):
        diff = np.abs(grad_backprop[key] - grad_numerical[key])
        rows[key] = {"mean_diff": float(diff.mean()), "max_diff": float(diff.max()),
                     "mean_abs_grad": float(np.abs(grad_backprop[key]).mean()),
                     "size": grad_backprop[key].size}
    rows["_time"] = {"numerical_s": numerical_s, "backprop_s": backprop_s}
    return rows


def delta_label(delta: float) -> str:
    return "δ = 0" if delta == 0 else f"δ = {delta:g}"


def table(results: dict[float, dict[str, dict[str, float]]]) -> str:
    """A Markdown table: one row per parameter, the mean and largest difference per δ."""
    deltas = list(results)
    head = ["parameter", "elements", "mean \\|gradient\\|"]
    for delta in deltas:
        head += [f"mean \\|difference\\|, {delta_label(delta)}", f"max, {delta_label(delta)}"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    first = results[deltas[0]]
    for key in ("W1", "b1", "W2", "b2"):
        cells = [key, str(first[key]["size"]), f"{first[key]['mean_abs_grad']:.2e}"]
        for delta in deltas:
            r = results[delta][key]
            cells += [f"{r['mean_diff']:.2e}", f"{r['max_diff']:.2e}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict[float, dict[str, dict[str, float]]], path: Path, dpi: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    keys = ["W1", "b1", "W2", "b2"]
    deltas = list(results)
    bars = [("mean |gradient|", [results[deltas[0]][k]["mean_abs_grad"] for k in keys])]
    bars += [(f"mean |backprop − numerical|, {delta_label(d)}",
              [results[d][k]["mean_diff"] for k in keys]) for d in deltas]
    figure = Figure(figsize=(8.0, 3.2), dpi=dpi)
    axes = figure.add_subplot()
    x = np.arange(len(keys))
    width = 0.8 / len(bars)
    for i, (label, values) in enumerate(bars):
        axes.bar(x + (i - (len(bars) - 1) / 2) * width, values, width, label=label)
    axes.set_yscale("log")
    axes.set_xticks(x, keys)
    axes.set_ylabel("float64, log scale")
    axes.set_title("TwoLayerNet: backpropagation vs numerical gradient (book 5.7.3)",
                   fontsize="medium")
    axes.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def draw(path: Path, dpi: int) -> Path:
    """The tape of TwoLayerNet's loss, drawn by minigrad.viz: the book's figure 5-29 (Affine →
    Relu → Affine → SoftmaxWithLoss), with the parameters under the book's names."""
    network = book.TwoLayerNet(4, 3, 2, rng=np.random.default_rng(0))
    loss = network.loss(np.ones((2, 4)), np.array([0, 1]))
    loss.name = "loss"
    graph = viz.draw_graph(loss, legend=False, rankdir="LR")
    try:
        return viz.render_graph(graph, path, dpi=dpi)
    except viz.DotNotFoundError:
        return viz.save_dot(graph, path.with_suffix(".dot"))


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    results = {}
    for delta in args.delta:
        rows = gradient_check(args, delta)
        times = rows.pop("_time")
        print(f"{delta_label(delta)}:  " + "  ".join(
            f"{key}:{r['mean_diff']:.3g}" for key, r in rows.items()))  # the book's printout
        print(f"   numerical gradient {times['numerical_s']:.2f} s, backpropagation "
              f"{times['backprop_s'] * 1e3:.2f} ms")
        results[delta] = rows
    print()
    print(table(results))
    path = plot(results, args.out / "ch05_gradcheck.png", args.dpi)
    graph = draw(args.out / "ch05_graph.png", args.dpi)
    print(f"\nwrote {path} and {graph}")
    return {"results": results, "figure": path, "graph": graph}


if __name__ == "__main__":
    main()
