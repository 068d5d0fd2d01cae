"""Training and inference throughput of the textbook CNN: minigrad against its peers.

Runs ``cnn_minigrad.py`` and the peer scripts (PyTorch, DeZero, the textbook NumPy layers, from
``<work>/shared/bench`` or ``--peers DIR``) one process at a time, alternately (A B C D, A B C D,
…), for a warm-up round that is not counted and then ``--rounds`` rounds. Every child gets the
same environment: the same OMP/OPENBLAS/MKL thread counts and, unless ``--keep-blas-env``, no
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides. The machine is shared and noisy, so it reports
medians, and compares each framework with the PyTorch run of the same round (median of the
per-round ratios).

It also measures NumPy's float32 GEMM speed in a child with the same threads and reports the
GFLOP/s each framework achieves on the network's matrix products as a fraction of it.

    python benchmarks/bench_cnn.py                          # 10k images, 1 epoch, 5 rounds
    python benchmarks/bench_cnn.py --epochs 3 --rounds 3 --json results.json
    python benchmarks/bench_cnn.py --frameworks minigrad torch --batch-size 200
"""

from __future__ import annotations

import argparse
import builtins
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("minigrad", "torch", "dezero", "numpy_seed")
PEER_SCRIPTS = {"torch": "torch_cnn.py", "dezero": "dezero_cnn.py",
                "numpy_seed": "numpy_seed_cnn.py"}
REFERENCE = "torch"

# Targets for minigrad: (what, framework compared with, metric, minimum ratio).
TARGETS = (
    ("training ≥ 1.2× PyTorch", "torch", "train", 1.2),
    ("inference ≥ 1.0× PyTorch", "torch", "infer", 1.0),
    ("training ≥ 3× DeZero", "dezero", "train", 3.0),
    ("training ≥ 2× textbook NumPy", "numpy_seed", "train", 2.0),
)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10000, help="training images per epoch")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2,
                    help="threads of every child: BLAS / OpenMP, torch.set_num_threads, "
                         "minigrad.set_num_threads")
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted")
    ap.add_argument("--batch-size", type=int, default=_common.BATCH,
                    help="training batch, for minigrad and any peer that accepts --batch-size "
                         "(the shared peers are fixed at 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS,
                    metavar="NAME", help=f"subset of {', '.join(FRAMEWORKS)}")
    ap.add_argument("--peers", type=Path, default=_common.PEERS_DIR,
                    help=f"folder of the peer scripts (default {_common.PEERS_DIR})")
    ap.add_argument("--keep-blas-env", action="store_true",
                    help="leave OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as they are for the children")
    ap.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                    help="write the results as JSON to PATH (or stdout when no PATH is given)")
    ap.add_argument("--raw", type=Path, default=None,
                    help="append every child's JSON line (warm-up included) to this file")
    ap.add_argument("--no-sgemm", action="store_true", help="skip the GEMM peak measurement")
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed per child run")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        ap.error("--rounds must be ≥ 1 and --warmup ≥ 0")
    if args.images < args.batch_size:
        ap.error(f"--images {args.images} is smaller than one batch of {args.batch_size}")
    return args


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ----------------------------------------------------------------------------------------------
# Children


def scripts(args, notes):
    """framework → (script path, accepts --batch-size) for the frameworks that can run."""
    found = {}
    for name in dict.fromkeys(args.frameworks):
        path = HERE / "cnn_minigrad.py" if name == "minigrad" else args.peers / PEER_SCRIPTS[name]
        if not path.is_file():
            notes.append(f"{name}: skipped, {path} is absent")
            continue
        found[name] = path
    takes_batch = {}
    for name, path in found.items():
        if name == "minigrad":
            takes_batch[name] = True
        elif args.batch_size != _common.BATCH:
            help_text = subprocess.run([sys.executable, str(path), "--help"], capture_output=True,
                                       text=True, timeout=120).stdout
            takes_batch[name] = "--batch-size" in help_text
            if not takes_batch[name]:
                notes.append(f"{name}: has no --batch-size, runs at batch {_common.BATCH}")
        else:
            takes_batch[name] = False
    return {name: (path, takes_batch[name]) for name, path in found.items()}


def command(args, path, takes_batch):
    cmd = [sys.executable, str(path), "--images", str(args.images), "--epochs", str(args.epochs),
           "--threads", str(args.threads), "--seed", str(args.seed), "--eval-batch", "1000"]
    if takes_batch and args.batch_size != _common.BATCH:
        cmd += ["--batch-size", str(args.batch_size)]
    return cmd


def run_child(cmd, env, timeout):
    """(last JSON line of stdout as a dict, None) or (None, error text)."""
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=str(Path(cmd[1]).parent))
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return None, tail
    return json.loads(lines[-1]), None


def is_import_failure(error):
    return any(s in error for s in ("ModuleNotFoundError", "ImportError"))


def probe(what, args, env):
    """Run ``_common.py sgemm|blas`` in a child with the benchmark's environment."""
    cmd = [sys.executable, str(HERE / "_common.py"), what, "--threads", str(args.threads)]
    res, err = run_child(cmd, env, args.timeout)
    if err:
        log(f"{what} measurement failed: {err}")
    return res


# ----------------------------------------------------------------------------------------------
# Summary


def inference_ips(res):
    """(images/s of the no_grad forward over the test set, how it was obtained)."""
    if "inference_images_per_second" in res:
        return res["inference_images_per_second"], "measured"
    if res.get("eval_seconds"):
        n = res.get("test_images", _common.N_TEST)
        return round(n / res["eval_seconds"], 1), "test images / eval_seconds"
    return None, "absent"


def summarise(runs, frameworks, peak_gflops):
    """Medians per framework and per-round ratios; ``runs[r][name]`` is a result dict or None."""
    train_fpi = _common.train_flops_per_image()
    infer_fpi = _common.inference_flops_per_image()
    out = {}
    for name in frameworks:
        rows = [r[name] for r in runs if r.get(name)]
        if not rows:
            out[name] = {"runs": 0}
            continue
        train = [x["images_per_second"] for x in rows]
        infer = [inference_ips(x)[0] for x in rows]
        s = {
            "runs": len(rows),
            "train_images_per_second": median(train),
            "train_images_per_second_min_max": [min(train), max(train)],
            "inference_images_per_second": median(infer),
            "inference_source": inference_ips(rows[0])[1],
            "peak_rss_mb": median([x["peak_rss_mb"] for x in rows]),
            "test_accuracy": median([x["test_accuracy"] for x in rows]),
            "final_train_loss": median([x["final_train_loss"] for x in rows]),
            "step_ms_p50": median([x.get("step_ms_p10_p50_p90_max", [None, None])[1]
                                   for x in rows]),
            "batch": rows[0].get("batch"),
            "train_gflops": median(train) * train_fpi / 1e9,
            "inference_gflops": (median(infer) or 0) * infer_fpi / 1e9,
        }
        if peak_gflops:
            s["train_fraction_of_peak"] = s["train_gflops"] / peak_gflops
            s["inference_fraction_of_peak"] = s["inference_gflops"] / peak_gflops
        for metric, key in (("train", "images_per_second"), ("infer", None)):
            for other in frameworks:
                if other == name:
                    continue
                ratios = []
                for r in runs:
                    a, b = r.get(name), r.get(other)
                    if a and b:
                        va = a[key] if key else inference_ips(a)[0]
                        vb = b[key] if key else inference_ips(b)[0]
                        if va and vb:
                            ratios.append(va / vb)
                if ratios:
                    s.setdefault("ratio", {}).setdefault(metric, {})[other] = {
                        "median": median(ratios), "per_round": [round(x, 3) for x in ratios]}
        epochs_rss = [x["rss_after_epoch_mb"] for x in rows if x.get("rss_after_epoch_mb")]
        if epochs_rss:
            per_epoch = [median(col) for col in zip(*epochs_rss)]
            s["rss_after_epoch_mb"] = per_epoch
            s["rss_growth_mb"] = per_epoch[-1] - per_epoch[0]
        phases = [x["phase_seconds"] for x in rows if x.get("phase_seconds")]
        if phases:
            s["phase_seconds"] = {k: median([p[k] for p in phases]) for k in phases[0]}
        out[name] = s
    return out


def minigrad_revision():
    """The checkout's commit, with "+changes" when minigrad/ has uncommitted edits."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=_common.REPO,
                             capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "minigrad"],
                               cwd=_common.REPO, capture_output=True, text=True,
                               timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (rev + ("+changes" if dirty else "")) or None


def load_stats(runs):
    loads = [res["loadavg_1m_before"] for r in runs for res in r.values()]
    return {"median": median(loads), "max": max(loads)} if loads else None


def targets(summary):
    res = []
    mg = summary.get("minigrad", {})
    for what, other, metric, minimum in TARGETS:
        ratio = mg.get("ratio", {}).get(metric, {}).get(other, {}).get("median")
        res.append({"target": what, "ratio": ratio, "minimum": minimum,
                    "met": None if ratio is None else ratio >= minimum})
    return res


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def print_table(result, file=sys.stdout):
    def print(*a):  # noqa: A001
        builtins.print(*a, file=file)

    s, m = result["summary"], result["machine"]
    print(f"\nSimpleConvNet, {result['config']['images']} images × {result['config']['epochs']} "
          f"epoch(s), batch {result['config']['batch_size']}, {result['config']['threads']} "
          f"threads; medians of {result['config']['rounds']} rounds (+{result['config']['warmup']}"
          f" warm-up)")
    print(f"machine: {m['cpu']}, nproc {m['nproc']}, numpy {m['numpy']}, BLAS {m['blas']}; "
          f"minigrad at {result['config']['minigrad_revision']}")
    load = m["loadavg_1m_before_runs"]
    if load:
        print(f"1-min load average before each run: median {load['median']:.1f}, "
              f"max {load['max']:.1f}")
        if load["median"] > m["nproc"] + 1:  # our own child accounts for up to ~nproc
            print(f"WARNING: the machine was busy (load above its {m['nproc']} CPUs): absolute "
                  f"numbers are low and noisy; compare the per-round ratios")
    head = (f"{'framework':<12}{'train img/s':>12}{'× torch':>9}{'infer img/s':>12}{'× torch':>9}"
            f"{'GFLOP/s':>9}{'% peak':>8}{'peak RSS':>10}{'test acc':>10}{'loss':>8}")
    print(head)
    print("-" * len(head))
    for name, x in s.items():
        if not x.get("runs"):
            print(f"{name:<12}  (no successful run)")
            continue
        rt = x.get("ratio", {}).get("train", {}).get(REFERENCE, {}).get("median")
        ri = x.get("ratio", {}).get("infer", {}).get(REFERENCE, {}).get("median")
        if name == REFERENCE:
            rt = ri = 1.0
        infer_mark = "" if x["inference_source"] == "measured" else "*"
        print(f"{name:<12}{fmt(x['train_images_per_second'], ',.0f'):>12}{fmt(rt, '.2f'):>9}"
              f"{fmt(x['inference_images_per_second'], ',.0f') + infer_mark:>12}"
              f"{fmt(ri, '.2f'):>9}{fmt(x['train_gflops'], '.1f'):>9}"
              f"{fmt(x.get('train_fraction_of_peak'), '.1%'):>8}"
              f"{fmt(x['peak_rss_mb'], ',.0f') + ' MB':>10}{fmt(x['test_accuracy'], '.4f'):>10}"
              f"{fmt(x['final_train_loss'], '.4f'):>8}")
    if any(x.get("inference_source", "measured") != "measured" for x in s.values()):
        print("* inference images/s derived as test images / eval_seconds (no_grad forward + "
              "argmax in batches of 1000)")
    print(f"GFLOP/s: matrix products only, {_common.train_flops_per_image() / 1e6:.3f} MFLOP per "
          f"training image (no dx for the first conv), for every framework alike")
    peak = result.get("sgemm")
    if peak:
        shapes = ", ".join(f"{k} {v['gflops']:.0f}" for k, v in peak["shapes"].items())
        print(f"sgemm peak {peak['peak_gflops']:.1f} GFLOP/s (np.matmul float32 2048³, median); "
              f"GFLOP/s per shape (M×K×N of the network's GEMMs): {shapes}")
    mg = s.get("minigrad", {})
    if mg.get("phase_seconds"):
        ph = mg["phase_seconds"]
        total = sum(ph.values())
        print("minigrad time per phase (s, median): " + ", ".join(
            f"{k} {v:.2f} ({v / total:.0%})" for k, v in ph.items()))
    if mg.get("rss_after_epoch_mb"):
        print(f"minigrad RSS after each epoch (MB, median): {mg['rss_after_epoch_mb']}  "
              f"growth {mg['rss_growth_mb']:+.1f} MB")
    for name, x in s.items():
        if name == "minigrad" or not x.get("runs"):
            continue
        r = mg.get("ratio", {}).get("train", {}).get(name)
        if r:
            print(f"minigrad / {name} training, per round: {r['per_round']}")
    print("targets:")
    for t in result["targets"]:
        state = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
        print(f"  {t['target']:<32} measured {fmt(t['ratio'], '.2f')}×  {state}")
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"command: {result['command']}   ({result['wall_seconds']:.0f} s)")


# ----------------------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    notes = []
    env = _common.child_env(args.threads, args.keep_blas_env)
    removed = [v for v in _common.BLAS_OVERRIDE_VARS if v in os.environ]
    if removed and not args.keep_blas_env:
        notes.append("unset for every child: " + ", ".join(
            f"{v}={os.environ[v]}" for v in removed))
    elif removed:
        notes.append("kept for every child: " + ", ".join(
            f"{v}={os.environ[v]}" for v in removed))
    loadavg_start = os.getloadavg()

    todo = scripts(args, notes)
    sgemm_runs = [] if args.no_sgemm else [probe("sgemm", args, env)]
    runs = []
    failures = {}
    for r in range(args.warmup + args.rounds):
        counted = r >= args.warmup
        label = f"round {r - args.warmup + 1}/{args.rounds}" if counted else "warm-up"
        results = {}
        for name, (path, takes_batch) in list(todo.items()):
            load = os.getloadavg()[0]
            res, err = run_child(command(args, path, takes_batch), env, args.timeout)
            if err:
                failures.setdefault(name, []).append(err)
                log(f"{label:>12} {name:<11} FAILED: {err}")
                if is_import_failure(err):
                    notes.append(f"{name}: skipped, its imports fail: {err}")
                    del todo[name]
                continue
            if args.raw:
                with open(args.raw, "a") as f:
                    f.write(json.dumps(dict(res, round=label)) + "\n")
            res["loadavg_1m_before"] = round(load, 2)
            results[name] = res
            log(f"{label:>12} {name:<11} train {res['images_per_second']:>8,.0f} img/s   "
                f"infer {inference_ips(res)[0]:>8,.0f} img/s   peak RSS {res['peak_rss_mb']:,.0f}"
                f" MB   acc {res['test_accuracy']:.4f}")
        if counted:
            runs.append(results)
    if not args.no_sgemm:
        sgemm_runs.append(probe("sgemm", args, env))
    for name, errs in failures.items():
        if name in todo:
            notes.append(f"{name}: {len(errs)} failed run(s), last: {errs[-1]}")

    sgemm = None
    good = [s for s in sgemm_runs if s]
    if good:
        shapes = {k: max(s["sgemm"][k]["gflops"] for s in good) for k in good[0]["sgemm"]}
        sgemm = {"peak_gflops": shapes["square_2048"],
                 "shapes": {k: {"shape_mkn": good[0]["sgemm"][k]["shape_mkn"], "gflops": v}
                            for k, v in shapes.items()},
                 "blas": good[0]["blas"], "blas_env": good[0]["blas_env"],
                 "note": "best of the measurements before and after the rounds, each the median "
                         "of 7 timings"}
    if sgemm:
        blas = sgemm["blas"]
    else:
        blas = (probe("blas", args, env) or {}).get("blas", [])
    blas_desc = ", ".join(f"{b.get('internal_api')} {b.get('version')} kernel "
                          f"{b.get('architecture')}" for b in blas) or "unknown (no threadpoolctl)"
    frameworks = [n for n in dict.fromkeys(args.frameworks)]
    summary = summarise(runs, frameworks, sgemm["peak_gflops"] if sgemm else None)
    import numpy as np

    result = {
        "command": " ".join(["python", "benchmarks/bench_cnn.py"] + (argv or sys.argv[1:])),
        "config": {"images": args.images, "epochs": args.epochs, "threads": args.threads,
                   "batch_size": args.batch_size, "rounds": args.rounds, "warmup": args.warmup,
                   "seed": args.seed, "peers": str(args.peers),
                   "minigrad_revision": minigrad_revision(),
                   "blas_env_kept": args.keep_blas_env},
        "machine": {"cpu": _common.cpu_model(), "nproc": os.cpu_count(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "blas": blas_desc,
                    "loadavg_start": [round(x, 2) for x in loadavg_start],
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()],
                    "loadavg_1m_before_runs": load_stats(runs)},
        "train_flops_per_image": _common.train_flops_per_image(),
        "inference_flops_per_image": _common.inference_flops_per_image(),
        "sgemm": sgemm,
        "summary": summary,
        "targets": targets(summary),
        "notes": notes,
        "runs": runs,
        "wall_seconds": time.perf_counter() - started,
    }
    if args.json == "-":
        print_table(result, file=sys.stderr)
        print(json.dumps(result, indent=1))
    else:
        print_table(result)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
