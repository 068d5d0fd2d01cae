"""A new op, written and checked the minigrad way: Swish, y = x · σ(βx).

    python examples/custom_op.py                  # β = 1.5 for the gradient check, 50 inputs
    python examples/custom_op.py --beta 0.5 --examples 200

1. Write the op as a :class:`minigrad.Function`: ``forward`` on arrays, ``backward`` giving
   dL/dx from dL/dy, the maths in the docstring. Settings (β) go to ``__init__``; what
   ``forward`` saves on ``self`` is freed after the backward pass.
2. Check the gradient against central differences in float64 with ``gradcheck``.
3. Let hypothesis draw many inputs (shapes and values from ``minigrad.testing.strategies``) and
   check forward and gradient on each.
4. Wrap it in an ``nn.Module`` to use it as a layer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import minigrad  # noqa: F401
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import given, settings
from hypothesis import strategies as st

from minigrad import Function, Tensor, nn
from minigrad.testing import gradcheck
from minigrad.testing.strategies import arrays, shapes


class Swish(Function):
    """y = x · σ(βx).    dL/dx = dL/dy · (s + β·y·(1 − s)),  s = σ(βx)

    Smooth everywhere (no kink to avoid); β = 1 is SiLU. Shapes: x, y, dy all alike.
    """

    def __init__(self, beta: float = 1.0):
        self.beta = beta

    def forward(self, x):
        beta = x.dtype.type(self.beta)
        self.s = 0.5 * (np.tanh(0.5 * beta * x) + 1)  # σ(βx), without overflow
        self.y = x * self.s
        return self.y

    def backward(self, dy):
        s, y = self.s, self.y
        return dy * (s + self.beta * y * (1 - s))


def swish(x: Tensor, beta: float = 1.0) -> Tensor:
    """The functional form: a new op instance per call."""
    return Swish(beta)(x)


class SwishLayer(nn.Module):
    """Swish as a layer, to put in ``nn.Sequential``."""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = beta

    def forward(self, x):
        return swish(x, self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


def check_swish(x, beta):
    """Forward against NumPy, gradient against central differences."""
    expected = x / (1 + np.exp(-beta * x))
    np.testing.assert_allclose(swish(Tensor(x), beta).data, expected, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda t: swish(t, beta), x)


def hypothesis_test(examples: int):
    """``check_swish`` on ``examples`` inputs drawn by hypothesis."""
    draw = given(x=arrays(shapes(max_dims=3)), beta=st.sampled_from([0.5, 1.0, 2.0]))
    return settings(deadline=None, max_examples=examples)(draw(check_swish))


test_swish = hypothesis_test(50)  # what pytest collects


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beta", type=float, default=1.5,
                    help="the β of the gradient check (default 1.5)")
    ap.add_argument("--examples", type=int, default=50, metavar="N",
                    help="inputs hypothesis draws for the forward and gradient checks "
                         "(default 50)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seeds the gradient check's input and the layer's weights (default 0)")
    args = ap.parse_args(argv)
    if not np.isfinite(args.beta):
        ap.error(f"--beta must be a finite number, got {args.beta}")
    if args.examples < 1:
        ap.error(f"--examples must be a positive integer, got {args.examples}")
    if args.seed < 0:
        ap.error(f"--seed must be an integer >= 0, got {args.seed}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    x = Tensor([-2.0, 0.0, 1.0, 3.0], requires_grad=True)
    y = swish(x)
    y.sum().backward()
    print("x        ", x.data)
    print("swish(x) ", np.round(y.data, 4))
    print("dy/dx    ", np.round(x.grad, 4))

    rng = np.random.default_rng(args.seed)
    print(f"gradcheck (float64, β = {args.beta:g}):",
          gradcheck(lambda t: swish(t, args.beta), rng.standard_normal((3, 4))))
    hypothesis_test(args.examples)()
    print(f"hypothesis: forward and gradient hold on {args.examples} drawn inputs")

    nn.manual_seed(args.seed)
    net = nn.Sequential(nn.Linear(4, 8), SwishLayer(), nn.Linear(8, 2))
    print(net)
    print("output shape:", net(Tensor(rng.standard_normal((5, 4)).astype(np.float32))).shape)


if __name__ == "__main__":
    main()
