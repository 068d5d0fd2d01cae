"""Where the time goes: the book's SimpleConvNet built from minigrad.book's layers vs from the
fast ops, profiled layer by layer.

    python examples/book/profile_twins.py                  # 10 batches of 100 images
    python examples/book/profile_twins.py --batches 3 --threads 2

Both networks are the book's chapter-7 SimpleConvNet (conv 30×5×5 → ReLU → 2×2 max pooling →
affine 4320→100 → ReLU → affine 100→10 → softmax cross-entropy) with the same weights: the
twin is ``minigrad.book.SimpleConvNet`` (``Convolution``, ``Pooling``, ``Affine``, ``Relu``,
``SoftmaxWithLoss``, the book's code), the fast one ``minigrad.models.SimpleConvNet``
(``conv2d``, ``max_pool2d``, ``affine``, ``relu``, ``softmax_cross_entropy``). Each runs
``--batches`` forward and backward passes on MNIST-subset images inside ``minigrad.profile``
(after one unmeasured warm-up batch), each batch in its own profile; the script checks that
both give the same loss, prints the per-op table (milliseconds in the fastest batch, the one
least disturbed by other work on the machine) and writes ``profile_twins.png`` into ``--out``.
The fast ops use ``--threads`` threads (1 by default, to compare like with like: the book's
layers run on one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import minigrad
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import minigrad

from minigrad import book
from minigrad.data import load_mnist
from minigrad.models import SimpleConvNet

DEFAULT_OUT = Path("docs/book/img")
# (label, the twin's op, the fast op): the ops that compute the same layer. The fast network's
# flatten (Reshape) is done inside the book's Affine.
LAYERS = (("convolution", "Convolution", "Conv2d"),
          ("max pooling", "Pooling", "MaxPool2d"),
          ("affine (×2)", "Affine", "Affine"),
          ("ReLU (×2)", "Relu", "ReLU"),
          ("softmax + loss", "SoftmaxWithLoss", "SoftmaxCrossEntropy"),
          ("flatten", None, "Reshape"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=10, help="profiled batches (10)")
    ap.add_argument("--batch-size", type=int, default=100, help="images per batch (100)")
    ap.add_argument("--threads", type=int, default=1, help="threads of the fast ops (1)")
    ap.add_argument("--seed", type=int, default=0, help="seeds the weights and the batches")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="folder for profile_twins.png (default: docs/book/img, from the "
                         "repository's root)")
    ap.add_argument("--dpi", type=int, default=80, help="resolution of the PNG")
    args = ap.parse_args(argv)
    for name in ("batches", "batch_size", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be a positive integer, "
                     f"got {getattr(args, name)}")
    return args


def twin_of(fast: SimpleConvNet) -> book.SimpleConvNet:
    """The book's SimpleConvNet holding the same weights as ``fast`` (float32, as fast's)."""
    conv = fast.conv1
    twin = book.SimpleConvNet(
        fast.input_dim, {"filter_num": conv.out_channels, "filter_size": conv.kernel_size[0],
                         "pad": conv.padding[0], "stride": conv.stride[0]},
        hidden_size=fast.affine1.out_features, output_size=fast.affine2.out_features,
        dtype=np.float32)
    layers = (fast.conv1, fast.affine1, fast.affine2)
    for i, layer in enumerate(layers, start=1):
        getattr(twin, f"W{i}").data = layer.weight.data.copy()
        getattr(twin, f"b{i}").data = layer.bias.data.copy()
    return twin


def run(net, batches) -> tuple[list[minigrad.profile], list[float]]:
    """One warm-up batch, then forward and backward of every batch, each in its own profile."""
    x, t = batches[0]
    net.loss(x, t).backward()
    profiles, losses = [], []
    for x, t in batches:
        with minigrad.profile() as prof:
            loss = net.loss(x, t)
            loss.backward()
        profiles.append(prof)
        losses.append(loss.item())
    return profiles, losses


def per_batch(profiles: list[minigrad.profile], name: str | None) -> tuple[float, float]:
    """(forward ms, backward ms) of the op class ``name`` in one batch: the fastest batch's,
    which is the least disturbed by other work on the machine."""
    best = (float("inf"), float("inf"))
    for prof in profiles:
        stats = {s.name: s for s in prof.stats()}
        s = stats.get(name)
        if s is None:
            return 0.0, 0.0
        best = (min(best[0], s.forward_s * 1e3), min(best[1], s.backward_s * 1e3))
    return best


def table(twin_profs, fast_profs) -> tuple[str, list[tuple]]:
    rows = []
    for label, twin_op, fast_op in LAYERS:
        rows.append((label, twin_op or "-", per_batch(twin_profs, twin_op),
                     fast_op, per_batch(fast_profs, fast_op)))
    head = (f"{'layer':<15} {'book op':<16} {'fwd ms':>7} {'bwd ms':>7}   {'fast op':<20} "
            f"{'fwd ms':>7} {'bwd ms':>7}  {'book/fast':>9}")
    lines = [head, "-" * len(head)]
    for label, twin_op, (tf, tb), fast_op, (ff, fb) in rows:
        ratio = f"{(tf + tb) / (ff + fb):9.1f}" if ff + fb > 0 and tf + tb > 0 else f"{'-':>9}"
        lines.append(f"{label:<15} {twin_op:<16} {tf:7.2f} {tb:7.2f}   {fast_op:<20} "
                     f"{ff:7.2f} {fb:7.2f}  {ratio}")
    twin_total = min(prof.total_ms for prof in twin_profs)
    fast_total = min(prof.total_ms for prof in fast_profs)
    lines.append("-" * len(head))
    lines.append(f"{'all ops':<15} {'':<16} {twin_total:15.2f}   {'':<20} {fast_total:15.2f}  "
                 f"{twin_total / fast_total:9.1f}")
    return "\n".join(lines), rows


def plot(rows: list[tuple], path: Path, dpi: int, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.6, 3.8), dpi=dpi)
    axes = figure.add_subplot()
    y = np.arange(len(rows))[::-1]
    for offset, side, colour, name in ((0.2, 2, "tab:orange", "book twin"),
                                       (-0.2, 4, "tab:blue", "fast op")):
        fwd = [row[side][0] for row in rows]
        bwd = [row[side][1] for row in rows]
        axes.barh(y + offset, fwd, 0.4, color=colour, label=f"{name}: forward")
        axes.barh(y + offset, bwd, 0.4, left=fwd, color=colour, alpha=0.45,
                  label=f"{name}: backward")
    axes.set_yticks(y, [f"{row[0]}\n{row[1]} / {row[3]}" for row in rows], fontsize="small")
    axes.set_xlabel("milliseconds per batch (the fastest batch)")
    axes.set_title(title, fontsize="medium")
    axes.legend(fontsize="x-small", loc="lower right")
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    threads = minigrad.get_num_threads()
    minigrad.set_num_threads(args.threads)
    try:
        return profile_and_plot(args)
    finally:
        minigrad.set_num_threads(threads)


def profile_and_plot(args: argparse.Namespace) -> dict[str, object]:
    rng = np.random.default_rng(args.seed)
    (x_train, t_train), _ = load_mnist(subset=True)
    batches = []
    for _ in range(args.batches):
        idx = rng.choice(len(x_train), args.batch_size, replace=False)
        batches.append((x_train[idx], t_train[idx]))
    fast = SimpleConvNet(rng=rng)
    twin = twin_of(fast)
    twin_profs, twin_losses = run(twin, batches)
    fast_profs, fast_losses = run(fast, batches)
    # Float32 sums in different orders: the losses agree to float32 precision.
    np.testing.assert_allclose(twin_losses, fast_losses, rtol=1e-4)
    text, rows = table(twin_profs, fast_profs)
    print(f"SimpleConvNet, {args.batches} batches of {args.batch_size} images, forward and "
          f"backward, milliseconds in the fastest batch (fast ops on {args.threads} "
          f"thread(s)); "
          f"the same loss: book {twin_losses[0]:.6f}, fast {fast_losses[0]:.6f}\n")
    print(text)
    title = (f"SimpleConvNet, batch {args.batch_size}, {args.threads} "
             f"thread{'s' if args.threads > 1 else ''}: book twin vs fast op")
    path = plot(rows, args.out / "profile_twins.png", args.dpi, title)
    print(f"\nwrote {path}")
    return {"rows": rows, "figure": path,
            "twin_ms": min(prof.total_ms for prof in twin_profs),
            "fast_ms": min(prof.total_ms for prof in fast_profs),
            "losses": (twin_losses, fast_losses)}


if __name__ == "__main__":
    main()
