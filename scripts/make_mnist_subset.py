"""Build minigrad/datasets/mnist_subset.npz from the full MNIST IDX files.

The subset is the first 10,000 training and the first 2,000 test images of MNIST, with their
labels, stored as uint8 arrays ``x_train`` (N, 28, 28), ``t_train`` (N,), ``x_test``, ``t_test``
by ``np.savez_compressed``. The source files are checked against the SHA-256 values pinned in
``minigrad.data`` first, so the subset is always cut from genuine MNIST.

Usage:
    python scripts/make_mnist_subset.py [SOURCE_DIR] [OUTPUT]

SOURCE_DIR defaults to ../shared/datasets/mnist beside the repository, OUTPUT to
minigrad/datasets/mnist_subset.npz inside it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# Lets the script run from a checkout without installing minigrad.
sys.path.insert(0, str(REPO))

from minigrad.data import FILES, MNIST_SHA256, _atomic_write, _idx_sha256, read_idx  # noqa: E402

DEFAULT_SOURCE = REPO.parent / "shared" / "datasets" / "mnist"
DEFAULT_OUTPUT = REPO / "minigrad" / "datasets" / "mnist_subset.npz"


def make_subset(source: Path, output: Path, n_train: int = 10_000, n_test: int = 2_000) -> None:
    """Verify the four files in ``source`` and write the first images of each split to ``output``.

    Args:
        source: folder holding the four gzip'd MNIST IDX files.
        output: the ``.npz`` to write (atomically: a temporary file renamed into place).
        n_train: training images to keep.
        n_test: test images to keep.
    """
    arrays = {}
    for key, name in FILES.items():
        path = source / name
        if not path.is_file():
            raise FileNotFoundError(f"make_mnist_subset: {path} does not exist")
        digest = _idx_sha256(path.read_bytes())
        if digest != MNIST_SHA256[name]:
            raise ValueError(
                f"make_mnist_subset: {path} is not the published MNIST file "
                f"(SHA-256 {digest}, expected {MNIST_SHA256[name]})"
            )
        arrays[key] = read_idx(path)

    subset = {
        "x_train": arrays["train_images"][:n_train],
        "t_train": arrays["train_labels"][:n_train],
        "x_test": arrays["test_images"][:n_test],
        "t_test": arrays["test_labels"][:n_test],
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **subset)
    _atomic_write(output, buffer.getvalue())

    contents = hashlib.sha256(b"".join(a.tobytes() for a in subset.values())).hexdigest()
    print(f"wrote {output} ({os.path.getsize(output):,} bytes)")
    for name, a in subset.items():
        print(f"  {name}: {a.shape} {a.dtype}")
    print(f"  SHA-256 of the array contents: {contents}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE,
                        help=f"folder with the four MNIST .gz files (default: {DEFAULT_SOURCE})")
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT,
                        help=f"the .npz to write (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--n-train", type=int, default=10_000, help="training images to keep")
    parser.add_argument("--n-test", type=int, default=2_000, help="test images to keep")
    args = parser.parse_args(argv)
    make_subset(args.source, args.output, args.n_train, args.n_test)


if __name__ == "__main__":
    main()
