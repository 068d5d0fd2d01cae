"""Page faults and step time with and without keeping freed memory (``minigrad.memory``).

``import minigrad`` asks glibc to keep what a training step frees for the next step
(``docs/ops.md``, "Memory kept between steps"). This measures what that gives, and what the
same glibc settings would give PyTorch, on the networks of ``bench_nets.py``: four worker
processes per network stay alive for the whole run,

- minigrad as imported (freed memory kept),
- minigrad with ``MINIGRAD_KEEP_FREED_MEMORY=0`` (glibc as it comes),
- PyTorch as it comes,
- PyTorch with ``GLIBC_TUNABLES`` setting the same two thresholds at its start,

and the parent asks them in turn, the first one changing from round to round, for a sample of
``--steps`` training steps (forward, loss, backward, Adam on one fixed random batch of 100):
wall ms per step, CPU ms per step (all threads), minor page faults per step and system CPU ms
per step. The table gives the medians over the rounds and, per framework, the ratio of the
kept run's medians to the other's.

    python benchmarks/bench_memory.py --nets deep bn simple mlp --threads 2 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402

WORKER = r"""
import json, resource, sys, time
here, framework, net, threads, steps = sys.argv[1:6]
sys.path.insert(0, here)
import numpy as np
import bench_nets
layers = bench_nets.NETS[net][1]
fw = bench_nets.Framework(framework, net, bench_nets.init_params(layers, 0), int(threads), 0)
rng = np.random.default_rng(0)
x = rng.random((100, 1, 28, 28), dtype=np.float32)
t = rng.integers(0, 10, 100)
for _ in range(3):
    fw.step(x, t)
kept = None
if framework == "minigrad":
    kept = fw.mg.get_keep_freed_memory()
print(json.dumps({"ready": True, "kept": kept, "minigrad_imported": "minigrad" in sys.modules}),
      flush=True)
for _ in sys.stdin:
    r0, c0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
    for _ in range(int(steps)):
        fw.step(x, t)
    w1, c1, r1 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
    n = int(steps)
    print(json.dumps({"wall_ms": (w1 - w0) / n * 1e3, "cpu_ms": (c1 - c0) / n * 1e3,
                      "faults": (r1.ru_minflt - r0.ru_minflt) / n,
                      "sys_ms": (r1.ru_stime - r0.ru_stime) / n * 1e3}), flush=True)
"""

TUNABLES = "glibc.malloc.mmap_threshold={}:glibc.malloc.trim_threshold={}"
METRICS = ("wall_ms", "cpu_ms", "faults", "sys_ms")


def configs(frameworks):
    """(label, framework, extra environment) of each worker."""
    from minigrad import memory

    out = []
    if "minigrad" in frameworks:
        out += [("minigrad kept", "minigrad", {}),
                ("minigrad glibc default", "minigrad", {"MINIGRAD_KEEP_FREED_MEMORY": "0"})]
    if "torch" in frameworks:
        tunables = TUNABLES.format(memory.MMAP_THRESHOLD, memory.TRIM_THRESHOLD)
        out += [("torch as it comes", "torch", {}),
                ("torch + GLIBC_TUNABLES", "torch", {"GLIBC_TUNABLES": tunables})]
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", nargs="+", default=["deep", "bn", "simple", "mlp"],
                    choices=["simple", "deep", "mlp", "bn"])
    ap.add_argument("--frameworks", nargs="+", default=["minigrad", "torch"],
                    choices=["minigrad", "torch"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5, help="training steps per sample")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    return ap.parse_args(argv)


def run_net(net, args):
    base_env = _common.child_env(args.threads, keep_blas_env=False)
    workers = []
    for label, framework, extra in configs(args.frameworks):
        env = dict(base_env)
        env.pop("MINIGRAD_KEEP_FREED_MEMORY", None)
        env.pop("GLIBC_TUNABLES", None)
        env.update(extra)
        p = subprocess.Popen([sys.executable, "-c", WORKER, str(HERE), framework, net,
                              str(args.threads), str(args.steps)], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        hello = json.loads(p.stdout.readline())
        if framework == "torch" and hello["minigrad_imported"]:
            raise SystemExit("bench_memory: the PyTorch worker imported minigrad, whose import "
                             "changes glibc's settings")
        workers.append((label, p, hello))
    samples = {label: [] for label, _, _ in workers}
    try:
        for r in range(args.rounds):
            order = workers[r % len(workers):] + workers[:r % len(workers)]
            for label, p, _ in order:
                p.stdin.write("go\n")
                p.stdin.flush()
                samples[label].append(json.loads(p.stdout.readline()))
    finally:
        for _, p, _ in workers:
            p.stdin.close()
            p.wait(timeout=60)
    medians = {label: {m: statistics.median(s[m] for s in samples[label]) for m in METRICS}
               for label in samples}
    return {"kept": {label: hello["kept"] for label, _, hello in workers},
            "samples": samples, "medians": medians}


def print_table(results, args):
    print(f"{args.threads} thread(s), {args.rounds} rounds of {args.steps} training steps at "
          f"batch 100 per worker, medians; CPU: all threads")
    print(f"{'network':8} {'worker':24} {'wall ms':>9} {'CPU ms':>9} {'faults':>9} "
          f"{'sys ms':>8}")
    for net, res in results.items():
        med = res["medians"]
        for label, m in med.items():
            print(f"{net:8} {label:24} {m['wall_ms']:9.2f} {m['cpu_ms']:9.2f} "
                  f"{m['faults']:9.0f} {m['sys_ms']:8.2f}")
        for a, b in (("minigrad kept", "minigrad glibc default"),
                     ("torch + GLIBC_TUNABLES", "torch as it comes")):
            if a in med and b in med:
                print(f"{net:8} {a + ' ÷ ' + b.split(' ', 1)[1]:>48}: wall "
                      f"{med[a]['wall_ms'] / med[b]['wall_ms']:.3f}, CPU "
                      f"{med[a]['cpu_ms'] / med[b]['cpu_ms']:.3f}")
    print("command: python benchmarks/bench_memory.py " + " ".join(sys.argv[1:]))


def main(argv=None):
    args = parse_args(argv)
    results = {net: run_net(net, args) for net in args.nets}
    print_table(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"config": vars(args), "results": results},
                                              indent=1))
    return results


if __name__ == "__main__":
    main()
