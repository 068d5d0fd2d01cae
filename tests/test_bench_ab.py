"""benchmarks/bench_ab.py: two checkouts (here the same one twice) on a network of bench_nets,
one pair of samples; the report names the four measurements and gives a positive ratio for
each (no timing is asserted)."""

import re
from pathlib import Path

from bench_scripts import load_benchmark

ab = load_benchmark("bench_ab")
REPO = Path(__file__).resolve().parents[1]


def test_bench_ab_reports_training_inference_and_both_latencies(capsys):
    ab.main([str(REPO), str(REPO), "--net", "mlp", "--threads", "1", "--pairs", "1"])
    out = capsys.readouterr().out
    assert out.startswith("mlp, 1 thread(s), 1 pairs")
    for what in ("training step", "inference", "batch 1", "batch 8"):
        line = re.search(rf"^  {what} +A +([\d.]+) +B +([\d.]+) +B / A ([\d.]+)$", out, re.M)
        assert line, f"no line for {what!r} in:\n{out}"
        a, b, ratio = map(float, line.groups())
        assert a > 0 and b > 0 and ratio > 0


def test_bench_ab_shares_the_pairs_among_pairs_of_workers(capsys):
    ab.main([str(REPO), str(REPO), "--net", "mlp", "--threads", "1", "--pairs", "3",
             "--workers", "2"])
    out = capsys.readouterr().out
    assert out.startswith("mlp, 1 thread(s), 3 pairs from 2 pairs of workers")
    assert re.search(r"^  batch 1 +A +[\d.]+ +B +[\d.]+ +B / A [\d.]+$", out, re.M)
