"""A network of your own: two strided convolutions with padding, dropout, trained on MNIST.

    python examples/custom_network.py [--epochs 2] [--limit N] [--seed 0]

Unlike the textbook CNN there is no pooling: each 3×3 convolution has padding 1 and stride 2,
which halves the image (28 → 14 → 7) while it learns more channels (1 → 16 → 32). Dropout sits
before each affine layer; ``model.train()`` turns it on, ``model.eval()`` off. It trains on the
10,000/2,000-image subset shipped with minigrad, so it needs no download.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:
    import minigrad
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import minigrad

from minigrad import functional as F
from minigrad import nn, optim
from minigrad.data import DataLoader, load_mnist


class StridedNet(nn.Module):
    """conv(1→16, 3×3, stride 2) → ReLU → conv(16→32, 3×3, stride 2) → ReLU → flatten
    → dropout → affine(1568→64) → ReLU → dropout → affine(64→10)."""

    def __init__(self, p_drop: float = 0.25) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, stride=2, padding=1)   # (N, 16, 14, 14)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)  # (N, 32, 7, 7)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(p_drop), nn.Linear(32 * 7 * 7, 64), nn.ReLU(),
            nn.Dropout(p_drop), nn.Linear(64, 10))

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.head(x)


def accuracy(model: nn.Module, x: np.ndarray, t: np.ndarray, batch_size: int = 1000) -> float:
    model.eval()
    with minigrad.no_grad():
        correct = sum(int((model(x[i:i + batch_size]).data.argmax(axis=1)
                           == t[i:i + batch_size]).sum())
                      for i in range(0, len(x), batch_size))
    return correct / len(x)


def main(argv: list[str] | None = None) -> float:
    """Train and return the test accuracy."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, metavar="N",
                    help="use only the first N training and N test images")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    (x_train, t_train), (x_test, t_test) = load_mnist(subset=True)
    if args.limit is not None:
        x_train, t_train = x_train[:args.limit], t_train[:args.limit]
        x_test, t_test = x_test[:args.limit], t_test[:args.limit]
    nn.manual_seed(args.seed)
    model = StridedNet()
    print(model)
    opt = optim.Adam(model.parameters(), lr=2e-3)
    loader = DataLoader(x_train, t_train, batch_size=64, seed=args.seed)

    for epoch in range(1, args.epochs + 1):
        model.train()
        start, total = time.perf_counter(), 0.0
        for x, t in loader:
            loss = F.softmax_cross_entropy(model(x), t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(t)
        acc = accuracy(model, x_test, t_test)
        print(f"epoch {epoch}: train loss {total / len(x_train):.4f}, test accuracy {acc:.4f} "
              f"({time.perf_counter() - start:.1f} s)")
    return acc


if __name__ == "__main__":
    main()
