"""Gradients of gradients: Newton's method, the derivatives of tanh, a Hessian-vector product.

    python examples/higher_order.py                # writes examples/output/tanh_*.png
    python examples/higher_order.py --out pictures --dpi 100

1. Newton's method on f(x) = x⁴ − 2x², with f'(x) and f''(x) taken from the tape
   (``minigrad.grad(..., create_graph=True)`` twice), beside plain gradient descent;
2. tanh and its first five derivatives on one figure (``tanh_derivatives.png``);
3. the graph that computes the third derivative of tanh (``tanh_3rd_derivative.png``; the
   DOT text when Graphviz's ``dot`` is missing);
4. a Hessian-vector product of the textbook CNN's loss with respect to all its parameters,
   checked against a central difference of gradients.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
from minigrad import Tensor, viz  # noqa: E402
from minigrad.models import SimpleConvNet  # noqa: E402


def f(x: Tensor) -> Tensor:
    return x ** 4 - 2 * x ** 2


def newton(x0: float, tol: float = 1e-10, max_steps: int = 50) -> list[float]:
    """x ← x − f'(x) / f''(x) until the step is below ``tol``; the iterates."""
    xs = [x0]
    for _ in range(max_steps):
        x = Tensor(np.array(xs[-1]), requires_grad=True)
        (d1,) = minigrad.grad(f(x), x, create_graph=True)   # f'(x), on the tape
        (d2,) = minigrad.grad(d1, x)                        # f''(x)
        step = float(d1.data) / float(d2.data)
        xs.append(xs[-1] - step)
        if abs(step) < tol:
            break
    return xs


def gradient_descent(x0: float, lr: float = 0.01, tol: float = 1e-10,
                     max_steps: int = 10_000) -> list[float]:
    """x ← x − lr · f'(x) until the step is below ``tol``; the iterates."""
    xs = [x0]
    for _ in range(max_steps):
        x = Tensor(np.array(xs[-1]), requires_grad=True)
        (d1,) = minigrad.grad(f(x), x)
        step = lr * float(d1.data)
        xs.append(xs[-1] - step)
        if abs(step) < tol:
            break
    return xs


def tanh_derivatives(x: np.ndarray, n: int) -> list[Tensor]:
    """tanh and its first n derivatives at the points x: each the gradient of the one before.

    tanh acts elementwise, so the gradient of Σ y with respect to x is dy/dx at every point.
    The last one is kept on the tape (its graph is drawn below).
    """
    t = Tensor(x, requires_grad=True, name="x")
    curves = [t.tanh()]
    for _ in range(n):
        (d,) = minigrad.grad(curves[-1].sum(), t, create_graph=True)
        curves.append(d)
    return curves


def plot_derivatives(x: np.ndarray, curves: list[Tensor], path: Path, dpi: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), dpi=dpi)
    axes = figure.add_subplot()
    labels = ["tanh x", "1st", "2nd", "3rd", "4th", "5th"]
    for curve, label in zip(curves, labels):
        axes.plot(x, curve.data, label=label)
    axes.set_xlabel("x")
    axes.set_ylim(-5, 5)
    axes.grid(alpha=0.3)
    axes.legend(ncol=3, fontsize="small")
    axes.set_title("tanh and its derivatives, each the gradient of the one before")
    figure.tight_layout()
    figure.savefig(path)
    return path


def draw_third_derivative(out: Path, dpi: int) -> Path:
    x = Tensor(np.array(1.0), requires_grad=True, name="x")
    y = x.tanh()
    for _ in range(3):
        (y,) = minigrad.grad(y, x, create_graph=True)
    y.name = "d³tanh/dx³"
    graph = viz.draw_graph(y, legend=False)
    graph.attr(dpi=str(dpi))
    try:
        return viz.render_graph(graph, out / "tanh_3rd_derivative.png")
    except viz.DotNotFoundError:
        return viz.save_dot(graph, out / "tanh_3rd_derivative.dot")


def cnn_hvp_check(seed: int, eps: float = 1e-5) -> tuple[float, float]:
    """H·v of the CNN loss by two reverse passes, and its relative distance from a central
    difference of gradients (g(θ + εv) − g(θ − εv)) / 2ε. Float64 throughout."""
    rng = np.random.default_rng(seed)
    net = SimpleConvNet(input_dim=(1, 10, 10), filter_num=4, filter_size=3, hidden_size=8,
                        output_size=3, rng=rng)
    params = list(net.parameters())
    for p in params:
        p.data = p.data.astype(np.float64)
    x = rng.standard_normal((4, 1, 10, 10))
    t = rng.integers(0, 3, 4)
    v = [rng.standard_normal(p.shape) for p in params]

    grads = minigrad.grad(net.loss(x, t), params, create_graph=True)   # g(θ), on the tape
    hv = minigrad.grad(grads, params, grad_outputs=v)                  # d⟨g(θ), v⟩/dθ = H·v

    theta = [p.data for p in params]

    def gradient(shift: float) -> list[np.ndarray]:
        for p, w, d in zip(params, theta, v):
            p.data = w + shift * d
        return [g.data for g in minigrad.grad(net.loss(x, t), params)]

    plus, minus = gradient(eps), gradient(-eps)
    for p, w in zip(params, theta):
        p.data = w
    fd = np.concatenate([((a - b) / (2 * eps)).ravel() for a, b in zip(plus, minus)])
    exact = np.concatenate([h.data.ravel() for h in hv])
    return float(np.linalg.norm(exact)), float(np.linalg.norm(exact - fd) / np.linalg.norm(fd))


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "output",
                        help="directory for the pictures (default: examples/output)")
    parser.add_argument("--dpi", type=int, default=72, help="resolution of the PNGs")
    parser.add_argument("--seed", type=int, default=0, help="seeds the CNN and its batch")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    print("1. Newton's method on f(x) = x^4 - 2x^2 from x = 2 (minimum at x = 1)")
    steps = newton(2.0)
    for i, xi in enumerate(steps):
        print(f"   step {i}: x = {xi:.12f}")
    slow = gradient_descent(2.0)
    print(f"   Newton: {len(steps) - 1} steps; gradient descent (lr 0.01): {len(slow) - 1} "
          f"steps to x = {slow[-1]:.12f}")

    print("2. tanh and its first 5 derivatives")
    grid = np.linspace(-4, 4, 401)
    curves = tanh_derivatives(grid, 5)
    plot = plot_derivatives(grid, curves, args.out / "tanh_derivatives.png", args.dpi)
    print(f"   wrote {plot}")

    print("3. the graph of the 3rd derivative of tanh")
    graph = draw_third_derivative(args.out, args.dpi)
    print(f"   wrote {graph}")

    print("4. Hessian-vector product of the CNN loss vs a finite difference of gradients")
    norm, error = cnn_hvp_check(args.seed)
    print(f"   |Hv| = {norm:.6g}, relative difference from the finite difference: {error:.2e}")
    return {"newton": steps, "gradient_descent": slow, "hvp_error": error,
            "pictures": [plot, graph]}


if __name__ == "__main__":
    main()
