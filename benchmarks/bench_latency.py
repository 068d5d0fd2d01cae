"""Forward-pass latency at small batches: minigrad against PyTorch in one process, one thread.

The networks of ``bench_nets.py`` (the same layers and initial weights in both frameworks), in
evaluation mode without a graph (``minigrad.no_grad``, ``torch.inference_mode``), at batch 1
and batch 8 by default. At these sizes a pass takes 0.1–1 ms and the machine's speed drifts by
more than the differences sought between processes started at different moments, so both
frameworks run in this one process, on one thread each (``minigrad.set_num_threads(1)``,
``torch.set_num_threads(1)``: with more, PyTorch's OpenMP threads keep spinning after a call
and take a core from minigrad's, see ``bench_layers.py``). Each round times ``--calls`` passes
of minigrad, keeps the fastest, then the same for PyTorch (PyTorch first in every other
round); the report gives each framework's median over the rounds of those fastest passes and,
as "×", the median of the per-round ratios PyTorch ÷ minigrad (> 1: minigrad faster, as in
``bench_nets.py``'s latency columns). The input is the same batch of uniform [0, 1) images for
both (seed 0).

``--checkout`` measures another checkout of minigrad (a before/after in two runs); by default,
the one this script belongs to.

    python benchmarks/bench_latency.py                          # mlp, bn, deep at batch 1 and 8
    python benchmarks/bench_latency.py --nets mlp --batches 1 --rounds 400 --json lat.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(net, batch, rounds, calls, bench_nets, minigrad, torch):
    """(minigrad's median ms, PyTorch's median ms, median ratio PyTorch ÷ minigrad)."""
    import numpy as np

    params = bench_nets.init_params(bench_nets.NETS[net][1], 0)
    mg = bench_nets.build_minigrad(net, params)
    tm = bench_nets.build_torch(net, params)
    mg.eval()
    tm.eval()
    x = np.random.RandomState(0).rand(batch, 1, 28, 28).astype(np.float32)

    def run_minigrad():
        return mg(minigrad.Tensor(x)).data

    def run_torch():
        return tm(torch.from_numpy(x)).numpy()

    def fastest(f):
        best = float("inf")
        for _ in range(calls):
            t0 = time.perf_counter()
            f()
            best = min(best, time.perf_counter() - t0)
        return best

    with minigrad.no_grad(), torch.inference_mode():
        a, b = run_minigrad(), run_torch()
        if not np.allclose(a, b, rtol=1e-4, atol=1e-4):
            raise SystemExit(f"bench_latency: {net} batch {batch}: the two frameworks' outputs "
                             f"differ by {float(np.abs(a - b).max()):.3g}")
        for _ in range(20):
            run_minigrad()
            run_torch()
        mine, theirs, ratios = [], [], []
        for r in range(rounds):
            if r % 2:
                t, m = fastest(run_torch), fastest(run_minigrad)
            else:
                m, t = fastest(run_minigrad), fastest(run_torch)
            mine.append(m)
            theirs.append(t)
            ratios.append(t / m)
    return statistics.median(mine) * 1e3, statistics.median(theirs) * 1e3, \
        statistics.median(ratios)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["mlp", "bn", "deep"],
                        help="networks of bench_nets.NETS (default: mlp bn deep)")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--calls", type=int, default=5, help="passes per round (the fastest "
                        "counts)")
    parser.add_argument("--checkout", default=None, help="a checkout of minigrad to measure "
                        "(default: this script's)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be at least 1")

    root = Path(args.checkout).resolve() if args.checkout else HERE.parent
    if not (root / "minigrad" / "__init__.py").is_file():
        parser.error(f"--checkout {root}: no minigrad package there")
    sys.path[:0] = [str(root), str(HERE)]
    # minigrad first: bench_nets puts this script's checkout on sys.path when it is imported
    import minigrad  # noqa: I001
    import torch
    import bench_nets
    if Path(minigrad.__file__).resolve().parent != root / "minigrad":
        raise SystemExit(f"bench_latency: imported {minigrad.__file__}, not the checkout {root} "
                         f"(minigrad was imported before)")
    unknown = [n for n in args.nets if n not in bench_nets.NETS]
    if unknown:
        parser.error(f"unknown nets {unknown}; choose from {sorted(bench_nets.NETS)}")
    minigrad.set_num_threads(1)
    torch.set_num_threads(1)

    results = []
    print(f"minigrad {root}, torch {torch.__version__}, 1 thread each; {args.rounds} rounds, "
          f"the fastest of {args.calls} passes each")
    print(f"{'network':10s} {'batch':>5s} {'minigrad ms':>12s} {'torch ms':>10s} {'×':>6s}")
    for net in args.nets:
        for batch in args.batches:
            m, t, ratio = measure(net, batch, args.rounds, args.calls, bench_nets, minigrad,
                                  torch)
            results.append({"net": net, "batch": batch, "minigrad_ms": round(m, 5),
                            "torch_ms": round(t, 5), "ratio": round(ratio, 4)})
            print(f"{net:10s} {batch:5d} {m:12.4f} {t:10.4f} {ratio:6.3f}", flush=True)
    print("× = median of the per-round ratios PyTorch ÷ minigrad (> 1: minigrad faster)")
    if args.json:
        Path(args.json).write_text(json.dumps({"checkout": str(root), "rounds": args.rounds,
                                               "calls": args.calls, "results": results},
                                              indent=1))
    return results


if __name__ == "__main__":
    main()
