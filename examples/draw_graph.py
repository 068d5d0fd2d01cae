"""Draw the textbook CNN's computation graph for one batch, six ways.

    python examples/draw_graph.py                 # writes examples/output/graph_*.svg and .png
    python examples/draw_graph.py --out pictures --batch 8 --seed 1

1. ``graph_plain``:   tensors (name, shape, dtype) and ops (class and settings);
2. ``graph_grads``:   after backward, gradient norms on the tensors and along every edge;
3. ``graph_modules``: the same graph with each nn module drawn as a cluster;
4. ``graph_profile``: op nodes coloured by their measured forward + backward time;
5. ``graph_collapsed``: one node per module, the view for big models;
6. ``graph_nan``:     a small expression whose log meets 0 and -1: NaN and inf drawn in red.

The batch comes from the MNIST subset shipped with minigrad (random images if it cannot be
loaded). Rendering needs Graphviz's ``dot``; without it the DOT files are written instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
from minigrad import nn, viz  # noqa: E402
from minigrad.models import SimpleConvNet  # noqa: E402


def one_batch(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        (x_train, t_train), _ = minigrad.data.load_mnist(subset=True)
        return x_train[:batch], t_train[:batch]
    except Exception as error:  # the picture does not need real digits
        print(f"MNIST subset unavailable ({error}); using random images")
        rng = np.random.default_rng(seed)
        return (rng.random((batch, 1, 28, 28), dtype=np.float32),
                rng.integers(0, 10, batch))


def nan_graph():
    """log of 0 and of -1 give -inf and NaN; the gradient 1/x is inf at 0."""
    x = minigrad.Tensor(np.array([2.0, 0.0, -1.0], np.float32), requires_grad=True, name="x")
    w = minigrad.Tensor(np.array([0.5, 1.0, 1.0], np.float32), requires_grad=True, name="w")
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = (x.log() * w).sum()
        with viz.record_grads() as grads:
            loss.backward()
    return viz.draw_graph(loss, show_values=True, show_grads=grads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "output")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dpi", type=int, default=72, help="resolution of the PNGs")
    args = parser.parse_args(argv)

    nn.manual_seed(args.seed)
    model = SimpleConvNet()
    x, t = one_batch(args.batch, args.seed)
    x = minigrad.Tensor(x, name="images")

    model.loss(x, t).backward()  # a warm-up step: the first matmuls pay for BLAS's start-up
    model.zero_grad()
    with minigrad.profile() as prof:
        loss = model.loss(x, t)
        with viz.record_grads() as grads:
            loss.backward()
    print(f"loss {loss.item():.4f} on a batch of {args.batch}")
    print(prof.table())

    graphs = {
        "graph_plain": viz.draw_graph(loss),
        "graph_grads": viz.draw_graph(loss, show_grads=grads, show_values=True),
        "graph_modules": viz.draw_graph(loss, group_modules=True),
        "graph_profile": viz.draw_graph(loss, profile=prof),
        "graph_collapsed": viz.draw_graph(loss, collapse=True),
    }
    graphs["graph_nan"] = nan_graph()
    args.out.mkdir(parents=True, exist_ok=True)
    have_dot = True
    for name, graph in graphs.items():
        if have_dot:
            try:
                for fmt in ("svg", "png"):
                    path = viz.render_graph(graph, args.out / f"{name}.{fmt}", dpi=args.dpi)
                    print("wrote", path)
                continue
            except viz.DotNotFoundError as error:
                print(error)
                have_dot = False
        print("wrote", viz.save_dot(graph, args.out / f"{name}.dot"))


if __name__ == "__main__":
    main()
