"""Time each layer of the textbook CNN in minigrad beside torch.nn.functional, one process each.

The layers and shapes of the textbook's SimpleConvNet at batch 100, float32:

    conv2d         x (100, 1, 28, 28), w (30, 1, 5, 5), b (30,)   stride 1, padding 0
    relu           (100, 30, 24, 24)
    max_pool2d     (100, 30, 24, 24), 2×2, stride 2
    affine         (100, 4320) · (4320, 100) + b
    relu           (100, 100)
    affine         (100, 100) · (100, 10) + b
    softmax_cross_entropy   logits (100, 10), integer labels

For every layer it times the forward pass alone (recorded on the tape, as in training) and the
forward pass followed by backward with a fixed upstream gradient, for minigrad and, when torch
is installed, for ``torch.nn.functional``. As in training, the conv input (the images) needs no
gradient; every other layer's input does.

Protocol: each library is timed in a process of its own, a worker that loads only that library
(``--worker minigrad|torch``, run by this script). Both libraries keep threads of their own that
outlive a call: minigrad's worker threads, and torch's OpenMP threads, which spin for a while
after each call waiting for more work. In one process a library's spinning threads hold a core
while the other library is timed (minigrad's ReLU on (100, 30, 24, 24) forward took 0.47 ms
alone and about 1.0 ms with torch sampled in between), so the two never share a process.
``--rounds R`` rounds each run one worker per library, one after the other, the order
alternating from round to round (minigrad torch, torch minigrad, …) so that neither always runs
first. Each worker builds the same inputs from the same seeds, and the upstream gradient of each
layer from a generator seeded by the layer's output shape, so both libraries get identical
arrays (the parent checks the gradients' sums agree). For every layer and phase a worker runs a
warm-up call, calibrates the number of calls that make a sample last about
``--sample-seconds`` (10 ms), then takes ``--repeats`` samples, and prints them all as one JSON
line. The table gives, per library, the median over all samples of all rounds, the ratio
minigrad / torch of those medians, and the ratio of each round's medians, to show the spread.

Threads: every worker gets OMP/OPENBLAS/MKL_NUM_THREADS set to ``--threads`` before NumPy or
torch loads; minigrad gets ``minigrad.set_num_threads`` and torch ``torch.set_num_threads`` with
the same number. Default: $OMP_NUM_THREADS or $OPENBLAS_NUM_THREADS if set, else the cores this
process may run on (the defaults of minigrad and OpenBLAS). While minigrad runs on more than one
thread it sets NumPy's OpenBLAS to one thread and splits its big ops over its own threads.

Clocks: ``--clock wall`` (default) is elapsed time. ``--clock cpu`` is the CPU time of the whole
worker process (``time.process_time``: every thread, minigrad's and torch's workers included),
which leaves out the time the process waits while other jobs hold the cores. With ``--threads
1`` it is the stable figure on a shared machine; with more threads it is the sum over the
threads, i.e. the CPU cost of a call rather than its latency, and counts threads that spin
while they wait for work.

BLAS environment: when OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, OpenBLAS can be pinned to
a slower kernel than the CPU supports. Both are removed from the workers' environment (pass
``--keep-blas-env`` to keep them); the tests never do.

    python benchmarks/bench_layers.py                  # table
    python benchmarks/bench_layers.py --threads 1 --clock cpu --rounds 5
    python benchmarks/bench_layers.py --repeats 15 --json layers.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout of minigrad
from _common import (  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)
    BLAS_OVERRIDE_VARS,
    blas_info,
    child_env,
    cpu_model,
    set_thread_env,
)

BATCH = 100
LIBRARIES = ("minigrad", "torch")
PHASES = ("fwd", "fwd_bwd")
INPUT_SEED = 0
DY_SEED = 1

# (name, shapes, input arrays by key in make_inputs, which inputs need a gradient). The name is
# also the op: minigrad_fn and torch_fn map it to each library's function.
LAYERS = (
    ("conv2d", "x(100,1,28,28) w(30,1,5,5)", ("images", "w1", "b1"), (False, True, True)),
    ("relu", "(100,30,24,24)", ("conv_out",), (True,)),
    ("max_pool2d", "(100,30,24,24) 2x2 s2", ("pool_in",), (True,)),
    ("affine", "(100,4320)·(4320,100)", ("flat", "w2", "b2"), (True, True, True)),
    ("relu", "(100,100)", ("hidden",), (True,)),
    ("affine", "(100,100)·(100,10)", ("hidden", "w3", "b3"), (True, True, True)),
    ("softmax_cross_entropy", "(100,10) int labels", ("logits", "labels"), (True, False)),
)
LAYER_NAMES = tuple(dict.fromkeys(layer[0] for layer in LAYERS))


def default_threads() -> int:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # not on Linux
        return max(1, os.cpu_count() or 1)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Per-layer forward and forward+backward times of the textbook CNN, "
                    "minigrad beside torch.nn.functional (float32, batch 100), each library "
                    "in its own process, in alternating rounds.",
        epilog="OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the workers' "
               "environment (they can pin OpenBLAS to a slower kernel); --keep-blas-env "
               "keeps them.")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of one worker process per library, the order alternating "
                         "(default 3)")
    ap.add_argument("--repeats", type=int, default=9,
                    help="samples per layer, phase and library in each round (the median of "
                         "all rounds' samples is reported)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads of minigrad, torch and every BLAS / OpenMP pool in the "
                         "workers (default: $OMP_NUM_THREADS or $OPENBLAS_NUM_THREADS if set, "
                         "else the cores available)")
    ap.add_argument("--json", metavar="FILE", default=None,
                    help="also write the results as JSON to FILE ('-' for stdout)")
    ap.add_argument("--keep-blas-env", action="store_true",
                    help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE if set")
    ap.add_argument("--sample-seconds", type=float, default=0.01,
                    help="each sample averages enough calls to last about this long")
    ap.add_argument("--no-torch", action="store_true", help="time minigrad alone")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time (default); cpu: CPU time of the worker process, "
                         "all its threads (time.process_time), which leaves out the time it "
                         "waits while other jobs run; with --threads above 1 that is the sum "
                         "over the threads (CPU cost, spinning included), not the latency")
    ap.add_argument("--only", default=None, metavar="NAMES",
                    help="comma-separated layer names to time, from "
                         f"{', '.join(LAYER_NAMES)}")
    ap.add_argument("--worker", choices=LIBRARIES, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1:
        ap.error("--repeats and --rounds must be positive")
    if args.threads is None:
        args.threads = default_threads()
    if args.threads < 1:
        ap.error("--threads must be positive")
    if args.only:
        unknown = set(args.only.split(",")) - set(LAYER_NAMES)
        if unknown:
            ap.error(f"unknown layer(s) {sorted(unknown)}; choose from {', '.join(LAYER_NAMES)}")
    return args


def selected_layers(only: str | None) -> list:
    wanted = set(only.split(",")) if only else set(LAYER_NAMES)
    return [layer for layer in LAYERS if layer[0] in wanted]


# ---------------------------------------------------------------------------------- the worker
# NumPy, minigrad and torch are imported inside these functions only: the worker sets the
# thread variables first, and the parent never loads them.


def make_inputs(seed: int = INPUT_SEED) -> dict:
    """The arrays of every layer (float32), drawn in the same order in every worker."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    return {
        "images": rng.random((BATCH, 1, 28, 28), dtype=np.float32),
        "w1": normal(30, 1, 5, 5, scale=np.sqrt(2 / 25)),
        "b1": normal(30, scale=0.1),
        "conv_out": normal(BATCH, 30, 24, 24),
        "pool_in": normal(BATCH, 30, 24, 24),
        "flat": normal(BATCH, 30, 12, 12),
        "w2": normal(4320, 100, scale=np.sqrt(2 / 4320)),
        "b2": normal(100, scale=0.1),
        "hidden": normal(BATCH, 100),
        "w3": normal(100, 10, scale=np.sqrt(2 / 100)),
        "b3": normal(10, scale=0.1),
        "logits": normal(BATCH, 10, scale=3.0),
        "labels": rng.integers(0, 10, BATCH),
    }


def upstream_grad(shape: tuple):
    """The fixed upstream gradient of an output of this shape (float32), the same in every
    worker: seeded by the shape, so it needs neither the other library nor a draw order."""
    import numpy as np

    if not shape:
        return np.ones((), np.float32)
    rng = np.random.default_rng([DY_SEED, *shape])
    return rng.standard_normal(shape).astype(np.float32)


def minigrad_fn(name: str):
    import minigrad.functional as F

    return {
        "conv2d": lambda x, w, b: F.conv2d(x, w, b),
        "relu": F.relu,
        "max_pool2d": lambda x: F.max_pool2d(x, 2, 2),
        "affine": F.affine,
        "softmax_cross_entropy": F.softmax_cross_entropy,
    }[name]


def torch_fn(name: str):
    import torch.nn.functional as tf

    return {
        "conv2d": lambda x, w, b: tf.conv2d(x, w, b),
        "relu": tf.relu,
        "max_pool2d": lambda x: tf.max_pool2d(x, 2, 2),
        # The weight arrives as (out, in), transposed once in torch_case.
        "affine": lambda x, wt, b: tf.linear(x.reshape(x.shape[0], -1), wt, b),
        "softmax_cross_entropy": lambda z, t: tf.cross_entropy(z, t),
    }[name]


class Case:
    """One layer in one library: call ``run(backward)`` to do one forward (and backward)."""

    def __init__(self, fn, leaves, dy_for):
        self.fn, self.leaves, self.dy_for = fn, leaves, dy_for
        self.dy = None

    def run(self, backward: bool) -> None:
        for leaf in self.leaves:
            leaf.grad = None
        y = self.fn()
        if backward:
            if self.dy is None:
                self.dy = self.dy_for(y)
            y.backward(self.dy)


def minigrad_case(layer, arrays: dict) -> Case:
    import minigrad

    name, _, keys, grads = layer
    inputs = [minigrad.Tensor(arrays[k], requires_grad=g) if arrays[k].dtype.kind == "f"
              else arrays[k] for k, g in zip(keys, grads)]
    leaves = [t for t in inputs if isinstance(t, minigrad.Tensor) and t.requires_grad]
    fn = minigrad_fn(name)
    return Case(lambda: fn(*inputs), leaves, lambda y: upstream_grad(tuple(y.shape)))


def torch_case(layer, arrays: dict) -> Case:
    import numpy as np
    import torch

    name, _, keys, grads = layer
    inputs = []
    for i, (k, g) in enumerate(zip(keys, grads)):
        a = arrays[k]
        if name == "affine" and i == 1:
            a = np.ascontiguousarray(a.T)   # torch keeps a linear layer's weight as (out, in)
        t = torch.from_numpy(np.array(a))
        inputs.append(t.requires_grad_(g) if t.is_floating_point() else t)
    leaves = [t for t in inputs if t.requires_grad]
    fn = torch_fn(name)
    return Case(lambda: fn(*inputs), leaves,
                lambda y: torch.from_numpy(upstream_grad(tuple(y.shape))))


def calibrate(case: Case, backward: bool, seconds: float) -> int:
    """Calls per sample so that one sample lasts about ``seconds`` (elapsed)."""
    start = time.perf_counter()
    case.run(backward)
    single = max(time.perf_counter() - start, 1e-6)
    return max(1, int(round(seconds / single)))


def sample(case: Case, backward: bool, calls: int, clock) -> float:
    start = clock()
    for _ in range(calls):
        case.run(backward)
    return (clock() - start) / calls


def worker(args) -> dict:
    """Time one library's cases in this process; the result is printed as one JSON line."""
    set_thread_env(args.threads)       # before NumPy, OpenBLAS or torch's OpenMP loads
    if not args.keep_blas_env:
        for var in BLAS_OVERRIDE_VARS:
            os.environ.pop(var, None)
    import numpy as np

    lib = args.worker
    if lib == "torch":
        try:
            import torch
        except ImportError as error:
            return {"library": lib, "unavailable": str(error)}
        torch.set_num_threads(args.threads)
        version, threads_used, make_case = torch.__version__, torch.get_num_threads(), torch_case
    else:
        import minigrad

        minigrad.set_num_threads(args.threads)
        version = getattr(minigrad, "__version__", None)
        threads_used, make_case = minigrad.get_num_threads(), minigrad_case
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    arrays = make_inputs()
    rows = []
    start = time.perf_counter()
    for layer in selected_layers(args.only):
        case = make_case(layer, arrays)
        case.run(True)                                  # draws dy, warms up
        dy = case.dy.numpy() if lib == "torch" else case.dy
        row = {"layer": layer[0], "shapes": layer[1], "dy_shape": list(dy.shape),
               "dy_sum": float(np.sum(dy, dtype=np.float64))}
        for backward, phase in zip((False, True), PHASES):
            case.run(backward)                          # warm-up, then calibration
            calls = calibrate(case, backward, args.sample_seconds)
            times = [sample(case, backward, calls, clock) for _ in range(args.repeats)]
            row[f"{phase}_calls"] = calls
            row[f"{phase}_samples_ms"] = [round(t * 1e3, 5) for t in times]
        rows.append(row)
    return {
        "library": lib,
        "version": version,
        "threads": args.threads,
        "library_threads": threads_used,
        "numpy": np.__version__,
        "blas": blas_info(),
        "seconds": round(time.perf_counter() - start, 3),
        "rows": rows,
    }


# ---------------------------------------------------------------------------------- the parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def worker_command(args, lib: str) -> list:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", lib,
           "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--sample-seconds", str(args.sample_seconds), "--clock", args.clock]
    if args.only:
        cmd += ["--only", args.only]
    if args.keep_blas_env:
        cmd.append("--keep-blas-env")
    return cmd


def run_worker(args, lib: str, env: dict) -> dict:
    """The worker's JSON line; its stderr goes straight to ours, so errors show as they come."""
    proc = subprocess.run(worker_command(args, lib), env=env, stdout=subprocess.PIPE, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"bench_layers: the {lib} worker failed (exit code {proc.returncode})")
    return json.loads(lines[-1])


def median(values) -> float:
    return float(statistics.median(values))


def summarise(runs: dict, libs: list) -> list:
    """One row per layer: medians over every sample of every round, ratios, per-round spread."""
    rows = []
    for i, layer in enumerate(runs[libs[0]][0]["rows"]):
        row = {"layer": layer["layer"], "shapes": layer["shapes"]}
        for lib in libs:
            mine = [run["rows"][i] for run in runs[lib]]
            if mine[0]["layer"] != layer["layer"] or mine[0]["dy_sum"] != layer["dy_sum"]:
                raise SystemExit(f"bench_layers: {lib} did not get the same layer or upstream "
                                 f"gradient as {libs[0]} for layer {i} ({layer['layer']})")
            for phase in PHASES:
                per_round = [r[f"{phase}_samples_ms"] for r in mine]
                row[f"{lib}_{phase}_ms"] = round(median([t for s in per_round for t in s]), 5)
                row[f"{lib}_{phase}_samples_ms"] = [t for s in per_round for t in s]
                row[f"{lib}_{phase}_round_medians_ms"] = [round(median(s), 5) for s in per_round]
        if "torch" in libs:
            for phase in PHASES:
                row[f"ratio_{phase}"] = row[f"minigrad_{phase}_ms"] / row[f"torch_{phase}_ms"]
                row[f"ratio_{phase}_rounds"] = [
                    round(m / t, 4) for m, t in zip(row[f"minigrad_{phase}_round_medians_ms"],
                                                     row[f"torch_{phase}_round_medians_ms"])]
        rows.append(row)
    return rows


def run(args) -> dict:
    notes = []
    libs = ["minigrad"]
    if not args.no_torch:
        if importlib.util.find_spec("torch") is None:
            notes.append("torch is not installed: timing minigrad alone")
            log(f"bench_layers: {notes[-1]}")
        else:
            libs.append("torch")
    env = child_env(args.threads, args.keep_blas_env)
    load_start = os.getloadavg()
    runs = {lib: [] for lib in libs}
    orders = []
    for r in range(args.rounds):
        order = list(libs) if r % 2 == 0 else libs[::-1]  # neither library always goes first
        orders.append(list(order))
        for lib in order:
            res = run_worker(args, lib, env)
            if "unavailable" in res:                  # installed, but its import fails
                notes.append(f"torch failed to import ({res['unavailable']}): timing minigrad "
                             "alone")
                log(f"bench_layers: {notes[-1]}")
                libs.remove(lib)
                del runs[lib]
                continue
            runs[lib].append(res)
            log(f"round {r + 1}/{args.rounds}: {lib} {res['seconds']:.1f} s")
    orders = [[lib for lib in order if lib in libs] for order in orders]
    first = runs["minigrad"][0]
    return {
        "rows": summarise(runs, libs),
        "threads": args.threads,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "order": orders,
        "clock": args.clock,
        "numpy": first["numpy"],
        "torch": runs["torch"][0]["version"] if "torch" in libs else None,
        "blas": first["blas"],
        "python": platform.python_version(),
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_start": load_start,
        "load_average": os.getloadavg(),
        "blas_env": {k: env.get(k) for k in BLAS_OVERRIDE_VARS},
        "workers": {lib: [{k: v for k, v in run.items() if k != "rows"} for run in runs[lib]]
                    for lib in libs},
        "notes": notes,
    }


def table(result: dict) -> str:
    has_torch = result["torch"] is not None
    head = ["layer", "shapes", "fwd ms"]
    if has_torch:
        head += ["torch fwd ms", "ratio", "per round"]
    head += ["fwd+bwd ms"]
    if has_torch:
        head += ["torch fwd+bwd ms", "ratio", "per round"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def spread(ratios):
        return " ".join(f"{v:.2f}" for v in ratios)

    for r in result["rows"]:
        cells = [r["layer"], r["shapes"]]
        for phase in PHASES:
            cells.append(f"{r[f'minigrad_{phase}_ms']:.3f}")
            if has_torch:
                cells += [f"{r[f'torch_{phase}_ms']:.3f}", f"{r[f'ratio_{phase}']:.2f}",
                          spread(r[f"ratio_{phase}_rounds"])]
        lines.append("| " + " | ".join(cells) + " |")
    # The sum of the per-layer medians, and per round the sum of that round's medians.
    cells = ["sum of layers", ""]
    for phase in PHASES:
        mg = sum(r[f"minigrad_{phase}_ms"] for r in result["rows"])
        cells.append(f"{mg:.3f}")
        if has_torch:
            th = sum(r[f"torch_{phase}_ms"] for r in result["rows"])
            per_round = [
                sum(ms) / sum(ts) for ms, ts in zip(
                    zip(*(r[f"minigrad_{phase}_round_medians_ms"] for r in result["rows"])),
                    zip(*(r[f"torch_{phase}_round_medians_ms"] for r in result["rows"])))]
            cells += [f"{th:.3f}", f"{mg / th:.2f}", spread(per_round)]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return
    result = run(args)
    order = ", ".join(" ".join(o) for o in result["order"])
    print(f"{result['machine']}, {result['cores']} cores; numpy {result['numpy']}, torch "
          f"{result['torch']}, {result['threads']} threads; {result['clock']} clock; one "
          f"process per library per round, {result['rounds']} rounds ({order}); median of "
          f"{result['rounds'] * result['repeats']} samples per library; load average "
          f"{result['load_average_start'][0]:.2f} → {result['load_average'][0]:.2f}")
    print(table(result))
    if args.json == "-":
        print(json.dumps(result))
    elif args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
