"""Per-op overhead of the tape: minigrad against PyTorch eager on the same chain of tiny ops.

On 1-element tensors the arithmetic costs nothing, so the time of a forward and backward pass
is the bookkeeping of the framework: creating tensors and op records, checking gradients,
walking the graph. The chain mixes add, sub, mul and div by Python scalars and by another
1-element tensor that requires grad, with exp, log and tanh, in a cycle whose composition is
the identity, so the values stay near 0.5 and dL/dx stays 1 (checked for both frameworks).

Runs alternate (minigrad, torch, minigrad, torch, ...) after one warm-up run of each, and the
table gives the median over the runs of µs per op for the forward pass, the backward pass and
both, and the ratio minigrad / torch. PyTorch is optional: without it only minigrad is timed.

    python benchmarks/bench_tape.py                    # ~10,000 ops, 7 runs each
    python benchmarks/bench_tape.py --ops 20000 --runs 9 --dtype float64
    python benchmarks/bench_tape.py --json             # one JSON object on stdout
    python benchmarks/bench_tape.py --json out.json    # the table on stdout, JSON to a file
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)

import minigrad  # noqa: E402

X0, A0 = 0.5, 0.9


def cycle(u, a):
    """Twelve ops whose composition is the identity, so values and gradients stay put.

    atanh(tanh u) = ½·ln((1 + tanh u) / (1 − tanh u)), then ·a /a, exp then ln, +a −a.
    """
    v = u.tanh()
    r = (v + 1.0) / (1.0 - v)
    u = r.log() * 0.5
    u = u * a
    u = u / a
    u = u.exp()
    u = u.log()
    u = u + a
    return u - a


OPS_PER_CYCLE = 12


def run_once(make_leaf, n_ops: int) -> tuple[float, float, float]:
    """Seconds of the forward and the backward pass of the chain, and the gradient of x."""
    x, a = make_leaf(X0), make_leaf(A0)
    gc.collect()
    start = time.perf_counter()
    u = x
    for _ in range(n_ops // OPS_PER_CYCLE):
        u = cycle(u, a)
    loss = u.sum()
    middle = time.perf_counter()
    loss.backward()
    end = time.perf_counter()
    grad = float(np.asarray(x.grad).reshape(-1)[0])
    if not abs(grad - 1.0) < 0.05:  # the chain is the identity
        raise AssertionError(f"the chain's gradient is {grad}, not 1")
    return middle - start, end - middle, grad


def minigrad_leaf(dtype):
    return lambda value: minigrad.Tensor(np.full(1, value, dtype), requires_grad=True)


def torch_leaf(torch, dtype):
    torch_dtype = getattr(torch, dtype)
    return lambda value: torch.full((1,), value, dtype=torch_dtype, requires_grad=True)


def summarize(runs: list[tuple[float, float, float]], n_ops: int) -> dict:
    def median_us(values):
        return statistics.median(values) / n_ops * 1e6

    return {
        "forward_us_per_op": median_us([f for f, _, _ in runs]),
        "backward_us_per_op": median_us([b for _, b, _ in runs]),
        "total_us_per_op": median_us([f + b for f, b, _ in runs]),
        "runs_total_us_per_op": [(f + b) / n_ops * 1e6 for f, b, _ in runs],
        "grad_x": runs[-1][2],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=10_000, help="ops in the chain (default 10000)")
    ap.add_argument("--runs", type=int, default=7, help="timed runs of each framework (≥ 5)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--no-torch", action="store_true", help="time minigrad only")
    ap.add_argument("--json", nargs="?", const="-", metavar="PATH",
                    help="write the results as JSON to PATH, or to stdout without PATH")
    args = ap.parse_args(argv)
    n_ops = max(round(args.ops / OPS_PER_CYCLE), 1) * OPS_PER_CYCLE  # whole cycles

    frameworks = {"minigrad": minigrad_leaf(np.dtype(args.dtype))}
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
        else:
            torch.set_num_threads(1)
            frameworks["torch"] = torch_leaf(torch, args.dtype)

    results = {name: [] for name in frameworks}
    for make_leaf in frameworks.values():  # warm-up, not counted
        run_once(make_leaf, n_ops)
    for _ in range(args.runs):
        for name, make_leaf in frameworks.items():
            results[name].append(run_once(make_leaf, n_ops))

    summary = {name: summarize(runs, n_ops) for name, runs in results.items()}
    out = {
        "ops": n_ops,
        "runs": args.runs,
        "dtype": args.dtype,
        "results": summary,
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "torch": torch.__version__ if torch else None,
                    "torch_threads": torch.get_num_threads() if torch else None},
    }
    if torch is not None:
        out["ratio_total"] = (summary["minigrad"]["total_us_per_op"]
                              / summary["torch"]["total_us_per_op"])
        out["ratio_per_run_median"] = statistics.median(
            m / t for m, t in zip(summary["minigrad"]["runs_total_us_per_op"],
                                  summary["torch"]["runs_total_us_per_op"]))
        if not np.isclose(summary["minigrad"]["grad_x"], summary["torch"]["grad_x"],
                          rtol=1e-3 if args.dtype == "float32" else 1e-9):
            raise AssertionError(f"the frameworks disagree on dL/dx: "
                                 f"{summary['minigrad']['grad_x']} vs "
                                 f"{summary['torch']['grad_x']}")

    if args.json == "-":
        print(json.dumps(out, indent=2))
        return 0
    machine = out["machine"]
    print(f"tape overhead: chain of {n_ops} ops on 1-element {args.dtype} tensors, "
          f"median of {args.runs} runs")
    print(f"machine: {machine['nproc']} CPUs, {machine['cpu']}; Python {machine['python']}, "
          f"NumPy {machine['numpy']}"
          + (f", torch {machine['torch']} ({machine['torch_threads']} thread)" if torch else ""))
    print(f"{'':10} {'forward':>10} {'backward':>10} {'total':>10}   (µs/op)")
    for name, s in summary.items():
        print(f"{name:10} {s['forward_us_per_op']:10.2f} {s['backward_us_per_op']:10.2f} "
              f"{s['total_us_per_op']:10.2f}")
    if torch is not None:
        print(f"ratio minigrad / torch (total): {out['ratio_total']:.2f} "
              f"(median of per-run ratios {out['ratio_per_run_median']:.2f}; target ≤ 2)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
