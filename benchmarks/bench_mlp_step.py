"""The textbook MLP's training step in minigrad: where it spends its time, and two of its fast
paths switched off and on in the same process.

The network, data layout, initial weights and Adam settings are bench_nets' ``mlp`` (affine
784-100-100-100-100-10 with ReLU, batch 100, float32), on random images. Two measurements:

- ``phases``: the median time of each phase of a step (forward per module, softmax
  cross-entropy, zero_grad, backward, Adam's step), with ``time.perf_counter``;
- ``ab``: rounds of ``--steps`` training steps (then ``--steps`` forward passes at batch 100 in
  eval mode) under each setting in turn, the order reversed every other round; the figure is
  the median over rounds of the ratio old / setting (> 1: the setting is faster). Settings:
  ``old`` (every affine product shared out among the threads as parallel.MIN_WORK allows,
  Adam one parameter at a time), ``new`` (the library's defaults), ``new-adam-1t`` (the
  defaults, with Adam's packed update kept on the calling thread);
- ``adam``: Adam's step alone on the network's ten parameters (gradients fixed), one parameter
  at a time, packed, and packed on the calling thread, in turn: medians of each round's median.

    python benchmarks/bench_mlp_step.py --threads 1
    python benchmarks/bench_mlp_step.py --threads 2 --rounds 25
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=60, help="steps per setting and round")
    args = ap.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    sys.path.insert(0, str(here.parent))
    import bench_nets
    import numpy as np

    from minigrad import optim
    from minigrad.ops import linear

    rs = np.random.RandomState(0)
    x = rs.rand(2000, 784).astype(np.float32)
    t = rs.randint(0, 10, 2000).astype(np.int64)

    def fresh():
        # A new network and optimiser: after about 700 steps on these images, some of Adam's
        # m (those of weights whose gradient has become 0) decay into float32's subnormal
        # range, where they stay and make the element-wise passes several times slower.
        return bench_nets.Framework("minigrad", "mlp",
                                    bench_nets.init_params(bench_nets.NETS["mlp"][1], 0),
                                    args.threads, 0)

    fw = fresh()
    batches = ((x[i:i + 100], t[i:i + 100]) for k in iter(int, 1) for i in range(0, 2000, 100))

    # ---------------------------------------------------------------- phases
    pc = time.perf_counter
    times: dict[str, list[float]] = {}
    for k in range(520):
        xb, tb = next(batches)
        t0 = pc()
        h = fw.mg.Tensor(xb)
        for i, module in enumerate(fw.model):
            ts = pc()
            h = module(h)
            times.setdefault(f"  {i} {type(module).__name__}", []).append(pc() - ts)
        t1 = pc()
        loss = fw.F.softmax_cross_entropy(h, tb)
        t2 = pc()
        fw.opt.zero_grad()
        t3 = pc()
        loss.backward()
        t4 = pc()
        fw.opt.step()
        t5 = pc()
        loss.item()
        if k >= 20:
            for name, dt in (("forward", t1 - t0), ("softmax cross-entropy", t2 - t1),
                             ("zero_grad", t3 - t2), ("backward", t4 - t3),
                             ("Adam step", t5 - t4), ("step", pc() - t0)):
                times.setdefault(name, []).append(dt)
    print(f"# phases of a training step, {args.threads} thread(s), median µs of 500 steps")
    for name in sorted(times, key=lambda n: (not n.startswith(" "), n)):
        print(f"{name:24s} {np.median(times[name]) * 1e6:8.1f}")

    # ---------------------------------------------------------------- old / new
    parallel_for = optim.parallel_for

    def on_this_thread(total, body, work, blas=False):
        body(0, total)

    settings = {"old": (0, False, parallel_for), "new": (linear.MIN_FLOPS, True, parallel_for),
                "new-adam-1t": (linear.MIN_FLOPS, True, on_this_thread)}

    def use(name):
        linear.MIN_FLOPS, optim.Adam._packed, optim.parallel_for = settings[name]

    def train(n):
        ts = []
        for _ in range(n):
            xb, tb = next(batches)
            t0 = pc()
            fw.step(xb, tb)
            ts.append(pc() - t0)
        return float(np.median(ts))

    def infer(n):
        fw.model.eval()
        ts = []
        with fw.inference():
            for _ in range(n):
                xb, _ = next(batches)
                t0 = pc()
                fw.forward(xb)
                ts.append(pc() - t0)
        fw.model.train()
        return float(np.median(ts))

    for name in settings:
        use(name)
        train(20)
    step = {name: [] for name in settings}
    forward = {name: [] for name in settings}
    for r in range(args.rounds):
        fw = fresh()
        train(20)
        for name in (list(settings) if r % 2 == 0 else list(settings)[::-1]):
            use(name)
            step[name].append(train(args.steps))
            infer(5)
            forward[name].append(infer(args.steps))
    use("new")
    adam = {name: [] for name in settings}
    for r in range(args.rounds):
        fw = fresh()
        train(2)
        for name in (list(settings) if r % 2 == 0 else list(settings)[::-1]):
            use(name)
            ts = []
            for _ in range(args.steps):
                t0 = pc()
                fw.opt.step()
                ts.append(pc() - t0)
            adam[name].append(float(np.median(ts)))
    use("new")
    print(f"\n# old / setting, {args.rounds} rounds of {args.steps} steps and forward passes "
          f"(> 1: faster than old); medians in µs")
    for name in settings:
        ratio_s = np.median(np.array(step["old"]) / np.array(step[name]))
        ratio_f = np.median(np.array(forward["old"]) / np.array(forward[name]))
        print(f"{name:12s} step {np.median(step[name]) * 1e6:7.0f} ({ratio_s:.3f})   "
              f"forward b100 {np.median(forward[name]) * 1e6:6.0f} ({ratio_f:.3f})   "
              f"Adam step {np.median(adam[name]) * 1e6:5.0f} "
              f"({np.median(np.array(adam['old']) / np.array(adam[name])):.3f})")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
