"""Two checkouts of minigrad on one network of bench_nets.py, their samples taken in turn.

For a before/after of a change: each checkout runs in a worker process of its own (its own
copy of minigrad imported, the same thread count), both build the network of
``bench_nets.NETS`` with the same random batch of 100 images, and the parent asks them in turn
(the first one changing from pair to pair) for a sample: 4 training steps (forward, loss,
backward, Adam), 10 inference passes (eval mode, no graph) and forward passes of the batch's
first image (40) and first 8 images (20), in ms per step or pass. The two samples
of a pair are taken within a second of each other, so their ratio cancels most of the drift of
a shared machine; the figure is the median of the pairs' ratios B / A.

A worker process also keeps a speed of its own for its life: on 2 threads, two workers of the
same checkout gave training steps 0.93-1.03x each other's (inference and the batch-1 and
batch-8 passes within 1-2%). ``--workers W`` starts W pairs of workers one pair after the
other, each taking its share of the pairs, so that the median spans several processes.

    python benchmarks/bench_ab.py /tmp/minigrad-base . --net bn --threads 2 --pairs 15
    python benchmarks/bench_ab.py /tmp/minigrad-base . --net deep --pairs 30 --workers 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKER = r"""
import json, sys, time
repo, threads, net = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path[:0] = [repo, repo + "/benchmarks"]
import numpy as np
import minigrad
import minigrad.functional as F
from minigrad import nn, optim
import bench_nets
minigrad.set_num_threads(threads)
params = bench_nets.init_params(bench_nets.NETS[net][1], 0)
model = bench_nets.build_minigrad(net, params)
opt = optim.Adam(model.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
x = rng.random((100, 1, 28, 28), dtype=np.float32)
t = rng.integers(0, 10, 100)
def step():
    loss = F.softmax_cross_entropy(model(minigrad.Tensor(x)), t)
    opt.zero_grad()
    loss.backward()
    opt.step()
def infer(batch=x):
    model.eval()
    with minigrad.no_grad():
        model(minigrad.Tensor(batch))
    model.train()
x1, x8 = np.ascontiguousarray(x[:1]), np.ascontiguousarray(x[:8])
step()
infer()
infer(x1)
infer(x8)
print("ready", flush=True)
for _ in sys.stdin:
    times = []
    for fn, calls in ((step, 4), (infer, 10), (lambda: infer(x1), 40), (lambda: infer(x8), 20)):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e3)
    print(json.dumps(times), flush=True)
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="checkout A (before)")
    ap.add_argument("b", help="checkout B (after)")
    ap.add_argument("--net", default="bn", help="a network of bench_nets.NETS (default bn)")
    ap.add_argument("--threads", default="2", help="threads of each worker (default 2)")
    ap.add_argument("--pairs", type=int, default=15, help="pairs of samples (default 15)")
    ap.add_argument("--workers", type=int, default=1,
                    help="pairs of worker processes, started one pair after the other, that "
                         "share the pairs of samples (default 1)")
    args = ap.parse_args(argv)
    if not 1 <= args.workers <= args.pairs:
        ap.error("--workers must be between 1 and --pairs")
    env = dict(os.environ, OMP_NUM_THREADS=args.threads, OPENBLAS_NUM_THREADS=args.threads,
               MINIGRAD_NUM_THREADS=args.threads)
    samples = {"A": [], "B": []}
    k = 0
    for group in range(args.workers):
        workers = {}
        for name, repo in (("A", args.a), ("B", args.b)):
            workers[name] = subprocess.Popen(
                [sys.executable, "-c", WORKER, str(Path(repo).resolve()), args.threads,
                 args.net], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            if not workers[name].stdout.readline().startswith("ready"):
                raise SystemExit(f"bench_ab: the worker of {repo} failed")
        for _ in range(args.pairs * (group + 1) // args.workers - k):
            for name in ("A", "B") if k % 2 == 0 else ("B", "A"):
                w = workers[name]
                time.sleep(0.05)    # the other worker's threads have stopped spinning by now
                w.stdin.write("sample\n")
                w.stdin.flush()
                samples[name].append(json.loads(w.stdout.readline()))
            k += 1
        for w in workers.values():
            w.stdin.close()
            w.wait()
    median = statistics.median
    shared = f" from {args.workers} pairs of workers" if args.workers > 1 else ""
    print(f"{args.net}, {args.threads} thread(s), {args.pairs} pairs{shared}; ms per step "
          f"(median), ratio B / A = median of the pairs' ratios")
    for i, what in enumerate(("training step", "inference", "batch 1", "batch 8")):
        a, b = ([s[i] for s in samples[name]] for name in ("A", "B"))
        ratio = median(q / p for p, q in zip(a, b))
        print(f"  {what:14s} A {median(a):8.2f}   B {median(b):8.2f}   B / A {ratio:.3f}")


if __name__ == "__main__":
    main()
