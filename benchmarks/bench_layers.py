"""Time each layer of the textbook CNN in minigrad beside torch.nn.functional, in one process.

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
is installed, for ``torch.nn.functional`` on the same arrays. The two run alternately, round
after round; each sample averages enough calls to last about 10 ms, and the table gives the
median of ``--repeats`` samples after a warm-up round, with the ratio minigrad / torch. As in
training, the conv input (the images) needs no gradient; every other layer's input does.

Threads: torch gets as many threads as NumPy's BLAS (read with threadpoolctl when it is
installed, else 2); ``--threads N`` sets both. NumPy's elementwise operations run on one
thread whatever that number.

BLAS environment: when OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, OpenBLAS can be pinned to
a slower kernel than the CPU supports. This script removes both from its own environment
before NumPy loads OpenBLAS (pass ``--keep-blas-env`` to keep them); the tests never do.

    python benchmarks/bench_layers.py                  # table
    python benchmarks/bench_layers.py --repeats 15 --json layers.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

BLAS_OVERRIDE_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
BATCH = 100


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Per-layer forward and forward+backward times of the textbook CNN, "
                    "minigrad beside torch.nn.functional (float32, batch 100).",
        epilog="OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the environment "
               "before NumPy loads (they can pin OpenBLAS to a slower kernel); "
               "--keep-blas-env keeps them.")
    ap.add_argument("--repeats", type=int, default=9,
                    help="samples per layer and library (the median is reported; ≥ 7)")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS threads for NumPy and torch's thread count (default: NumPy's "
                         "BLAS threads as threadpoolctl reports them, else 2)")
    ap.add_argument("--json", metavar="FILE", default=None,
                    help="also write the results as JSON to FILE ('-' for stdout)")
    ap.add_argument("--keep-blas-env", action="store_true",
                    help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE if set")
    ap.add_argument("--sample-seconds", type=float, default=0.01,
                    help="each sample averages enough calls to last about this long")
    ap.add_argument("--no-torch", action="store_true", help="time minigrad alone")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time (default); cpu: the CPU time of this thread, "
                         "which leaves out the time the process waits while other jobs run "
                         "(only with --threads 1, where every library computes on this thread)")
    ap.add_argument("--only", default=None, metavar="NAMES",
                    help="comma-separated layer names to time (e.g. conv2d,max_pool2d)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be positive")
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu needs --threads 1: with more threads, work done on other "
                 "threads would not be counted")
    return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # Before NumPy (and so OpenBLAS) is loaded: these are read once, at load time.
    if not ARGS.keep_blas_env:
        for var in BLAS_OVERRIDE_VARS:
            os.environ.pop(var, None)
    if ARGS.threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout of minigrad
from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)

import minigrad  # noqa: E402
import minigrad.functional as F  # noqa: E402


def blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return counts[0] if counts else None


# ---------------------------------------------------------------------------------- the layers


def make_inputs(seed: int = 0) -> dict:
    """The arrays of every layer (float32), drawn once and shared by both libraries."""
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
        "rng": rng,
    }


def layer_specs(a: dict) -> list:
    """(name, shapes, arrays, needs-grad flags, minigrad fn, torch fn factory) per layer."""

    def tconv(torch, tf):
        return lambda x, w, b: tf.conv2d(x, w, b)

    def tpool(torch, tf):
        return lambda x: tf.max_pool2d(x, 2, 2)

    def trelu(torch, tf):
        return lambda x: tf.relu(x)

    def tlinear(torch, tf):
        # torch keeps the weight as (out, in): hand it the transpose, made once, contiguous.
        return lambda x, wt, b: tf.linear(x.reshape(x.shape[0], -1), wt, b)

    def tce(torch, tf):
        return lambda z, t: tf.cross_entropy(z, t)

    return [
        ("conv2d", "x(100,1,28,28) w(30,1,5,5)", (a["images"], a["w1"], a["b1"]),
         (False, True, True), lambda x, w, b: F.conv2d(x, w, b), tconv, None),
        ("relu", "(100,30,24,24)", (a["conv_out"],), (True,), F.relu, trelu, None),
        ("max_pool2d", "(100,30,24,24) 2x2 s2", (a["pool_in"],), (True,),
         lambda x: F.max_pool2d(x, 2, 2), tpool, None),
        ("affine", "(100,4320)·(4320,100)", (a["flat"], a["w2"], a["b2"]), (True, True, True),
         F.affine, tlinear, "transpose_w"),
        ("relu", "(100,100)", (a["hidden"],), (True,), F.relu, trelu, None),
        ("affine", "(100,100)·(100,10)", (a["hidden"], a["w3"], a["b3"]), (True, True, True),
         F.affine, tlinear, "transpose_w"),
        ("softmax_cross_entropy", "(100,10) int labels", (a["logits"], a["labels"]),
         (True, False), F.softmax_cross_entropy, tce, None),
    ]


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


def minigrad_case(spec, rng) -> Case:
    _, _, arrays, grads, fn, _, _ = spec
    inputs = [minigrad.Tensor(a, requires_grad=g) if a.dtype.kind == "f" else a
              for a, g in zip(arrays, grads)]
    leaves = [t for t in inputs if isinstance(t, minigrad.Tensor) and t.requires_grad]

    def dy_for(y):
        if y.ndim == 0:
            return np.ones((), y.dtype)
        return rng.standard_normal(y.shape).astype(y.dtype)

    return Case(lambda: fn(*inputs), leaves, dy_for)


def torch_case(spec, torch, mg_dy) -> Case:
    _, _, arrays, grads, _, factory, special = spec
    fn = factory(torch, torch.nn.functional)
    inputs = []
    for i, (a, g) in enumerate(zip(arrays, grads)):
        if special == "transpose_w" and i == 1:
            a = np.ascontiguousarray(a.T)
        t = torch.from_numpy(np.array(a))
        inputs.append(t.requires_grad_(g) if t.is_floating_point() else t)
    leaves = [t for t in inputs if t.requires_grad]
    return Case(lambda: fn(*inputs), leaves, lambda y: torch.from_numpy(mg_dy.copy()))


CLOCK = time.perf_counter


def calibrate(case: Case, backward: bool, seconds: float) -> int:
    """Calls per sample so that one sample lasts about ``seconds``."""
    start = time.perf_counter()
    case.run(backward)
    single = max(time.perf_counter() - start, 1e-6)
    return max(1, int(round(seconds / single)))


def sample(case: Case, backward: bool, calls: int) -> float:
    start = CLOCK()
    for _ in range(calls):
        case.run(backward)
    return (CLOCK() - start) / calls


def run(args) -> dict:
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    threads = args.threads or blas_threads() or 2
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None:
        torch.set_num_threads(threads)
    a = make_inputs()
    specs = layer_specs(a)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {spec[0] for spec in specs}
        if unknown:
            raise SystemExit(f"bench_layers: unknown layer(s) {sorted(unknown)}; choose from "
                             f"{sorted({spec[0] for spec in specs})}")
        specs = [spec for spec in specs if spec[0] in wanted]
    rows = []
    for spec in specs:
        mg = minigrad_case(spec, a["rng"])
        mg.run(True)                                   # draws dy, warms up
        cases = {"minigrad": mg}
        if torch is not None:
            cases["torch"] = torch_case(spec, torch, mg.dy)
        row = {"layer": spec[0], "shapes": spec[1]}
        for backward in (False, True):
            phase = "fwd_bwd" if backward else "fwd"
            calls = {}
            for lib, case in cases.items():            # warm-up round, then calibration
                case.run(backward)
                calls[lib] = calibrate(case, backward, args.sample_seconds)
            times = {lib: [] for lib in cases}
            for _ in range(args.repeats):              # alternate the libraries
                for lib, case in cases.items():
                    times[lib].append(sample(case, backward, calls[lib]))
            for lib in cases:
                row[f"{lib}_{phase}_ms"] = float(np.median(times[lib])) * 1e3
                row[f"{lib}_{phase}_samples_ms"] = [round(t * 1e3, 4) for t in times[lib]]
            if torch is not None:
                row[f"ratio_{phase}"] = row[f"minigrad_{phase}_ms"] / row[f"torch_{phase}_ms"]
        rows.append(row)
    return {
        "rows": rows,
        "threads": threads,
        "repeats": args.repeats,
        "clock": args.clock,
        "numpy": np.__version__,
        "torch": None if torch is None else torch.__version__,
        "python": platform.python_version(),
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "blas_env": {k: os.environ.get(k) for k in BLAS_OVERRIDE_VARS},
    }


def table(result: dict) -> str:
    has_torch = result["torch"] is not None
    head = ["layer", "shapes", "fwd ms"]
    if has_torch:
        head += ["torch fwd ms", "ratio"]
    head += ["fwd+bwd ms"]
    if has_torch:
        head += ["torch fwd+bwd ms", "ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    totals = {}
    for r in result["rows"]:
        cells = [r["layer"], r["shapes"], f"{r['minigrad_fwd_ms']:.3f}"]
        if has_torch:
            cells += [f"{r['torch_fwd_ms']:.3f}", f"{r['ratio_fwd']:.2f}"]
        cells += [f"{r['minigrad_fwd_bwd_ms']:.3f}"]
        if has_torch:
            cells += [f"{r['torch_fwd_bwd_ms']:.3f}", f"{r['ratio_fwd_bwd']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
        for key in ("minigrad_fwd_ms", "torch_fwd_ms", "minigrad_fwd_bwd_ms",
                    "torch_fwd_bwd_ms"):
            if key in r:
                totals[key] = totals.get(key, 0.0) + r[key]
    cells = ["sum of layers", "", f"{totals['minigrad_fwd_ms']:.3f}"]
    if has_torch:
        cells += [f"{totals['torch_fwd_ms']:.3f}",
                  f"{totals['minigrad_fwd_ms'] / totals['torch_fwd_ms']:.2f}"]
    cells += [f"{totals['minigrad_fwd_bwd_ms']:.3f}"]
    if has_torch:
        cells += [f"{totals['torch_fwd_bwd_ms']:.3f}",
                  f"{totals['minigrad_fwd_bwd_ms'] / totals['torch_fwd_bwd_ms']:.2f}"]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    result = run(ARGS)
    print(f"{result['machine']}, {result['cores']} cores; numpy {result['numpy']}, torch "
          f"{result['torch']}, {result['threads']} threads; {result['clock']} clock, median of "
          f"{result['repeats']} samples; load average {result['load_average'][0]:.2f}")
    print(table(result))
    if ARGS.json == "-":
        print(json.dumps(result))
    elif ARGS.json:
        Path(ARGS.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
