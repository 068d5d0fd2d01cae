"""Cost of the observer hook: ops with no observer, under ``profile()`` and under anomaly mode.

The tape times an op and calls observers only when ``minigrad.function._observers`` is
non-empty; otherwise each op (forward and backward) pays one truth test on an empty list. This
script measures:

1. a chain of ~10,000 ops on 1-element tensors (pure bookkeeping, the worst case for any
   per-op cost), forward + backward, in µs per op: no observer, ``profile()`` active,
   ``detect_anomaly()`` active;
2. the truth test of an empty list alone (``if []:``), in ns, next to the per-op time;
3. if ``minigrad.models.SimpleConvNet`` is available, a training step (forward + backward) of
   the textbook CNN on a random batch, no observer vs ``profile()``.

Every round runs each mode once, in an order reversed every other round, after a warm-up; the
table gives medians over the rounds and the ratio to the no-observer median.

    python benchmarks/bench_profile.py                 # 10,000 ops, 7 rounds
    python benchmarks/bench_profile.py --ops 20000 --runs 9 --cnn-batch 100
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
from minigrad import function  # noqa: E402
from minigrad.anomaly import detect_anomaly  # noqa: E402
from minigrad.profiler import profile  # noqa: E402


class _Off:
    def __enter__(self):
        assert not function._observers, "an observer is registered: the baseline would be wrong"
        return self

    def __exit__(self, *exc):
        return None


MODES = {"no observer": _Off, "profile()": profile, "detect_anomaly()": detect_anomaly}


def chain(n_ops: int) -> float:
    """Seconds for a forward and backward pass through n_ops ops on 1-element tensors."""
    x = minigrad.Tensor(np.array([0.5]), requires_grad=True)
    start = time.perf_counter()
    y = x
    for i in range(n_ops // 4):
        y = ((y * 1.0) + 0.0).relu() - 0.0 if i % 2 else ((y + 0.0) * 1.0).tanh() * 1.0
    y.sum().backward()
    return time.perf_counter() - start


def cnn_step(model, x, t) -> float:
    start = time.perf_counter()
    loss = model.loss(x, t)
    loss.backward()
    return time.perf_counter() - start


def empty_list_check_ns() -> float:
    """Median ns of ``if observers:`` on an empty list (the cost an op pays with no observer)."""
    observers: list = []
    times = timeit.repeat("if observers: pass", globals={"observers": observers},
                          number=1_000_000, repeat=7)
    return statistics.median(times) / 1_000_000 * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cnn-batch", type=int, default=32, help="0 skips the CNN step")
    args = parser.parse_args()

    gc.disable()  # collections at random points would dominate the spread
    # Count the ops one chain really records (4 per step, and the final sum).
    with profile() as counter:
        chain(args.ops)
    n_ops = sum(s.calls for s in counter.stats())
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(2):  # warm-up
        for mode in MODES.values():
            with mode():
                chain(args.ops)
    for r in range(args.runs):
        names = list(MODES) if r % 2 == 0 else list(MODES)[::-1]  # alternate the order
        for name in names:
            with MODES[name]():
                results[name].append(chain(args.ops))
            gc.collect()

    base = statistics.median(results["no observer"])
    print(f"chain of {n_ops} ops on 1-element tensors, forward + backward, "
          f"median of {args.runs} rounds")
    print(f"{'mode':<18} {'µs per op':>10} {'ratio':>7}")
    for name, times in results.items():
        med = statistics.median(times)
        print(f"{name:<18} {med / n_ops * 1e6:>10.2f} {med / base:>7.2f}")
    check = empty_list_check_ns()
    per_op_ns = base / n_ops * 1e9
    # Each op checks the list twice in forward (before and after) and twice in backward.
    print(f"empty-list truth test: {check:.1f} ns; 4 per op (2 forward, 2 backward) = "
          f"{4 * check:.0f} ns = {400 * check / per_op_ns:.2f}% of the {per_op_ns:.0f} ns an "
          f"op costs with no observer")

    if args.cnn_batch:
        try:
            from minigrad.models import SimpleConvNet
            model = SimpleConvNet()
        except Exception as error:  # the model is optional here
            print(f"CNN step skipped: {type(error).__name__}: {error}")
            return
        rng = np.random.default_rng(0)
        x = rng.random((args.cnn_batch, 1, 28, 28), dtype=np.float32)
        t = rng.integers(0, 10, args.cnn_batch)
        steps = {"no observer": [], "profile()": []}
        for _ in range(2):
            for name in steps:
                with MODES[name]():
                    cnn_step(model, x, t)
        for r in range(args.runs):
            for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
                with MODES[name]():
                    steps[name].append(cnn_step(model, x, t))
                gc.collect()
        base = statistics.median(steps["no observer"])
        print(f"\nSimpleConvNet training step (forward + backward), batch {args.cnn_batch}, "
              f"median of {args.runs} rounds")
        print(f"{'mode':<18} {'ms per step':>12} {'ratio':>7}")
        for name, times in steps.items():
            med = statistics.median(times)
            print(f"{name:<18} {med * 1e3:>12.2f} {med / base:>7.3f}")


if __name__ == "__main__":
    main()
