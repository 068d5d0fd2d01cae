"""benchmarks/bench_conv_ab.py: this checkout's conv.py against itself as the "old" version, on
the BatchNorm CNN at batch 1, one round; the report has a line for each mode and each
convolution layer, with positive times and ratios (no timing is asserted)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_bench_conv_ab_reports_both_modes_and_each_layer():
    pytest.importorskip("torch")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_conv_ab.py"),
         str(REPO / "minigrad" / "ops" / "conv.py"), "--nets", "bn", "--batches", "1",
         "--rounds", "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    labels = ["bn batch 1 nograd", "bn batch 1 grad", "bn b1 conv1 1→16 28×28",
              "bn b1 conv2 16→32 14×14"]
    number = r"([\d.]+)"
    for label in labels:
        line = re.search(rf"^{re.escape(label)} +old +{number} µs +new +{number} µs +torch +"
                         rf"{number} µs +new/old {number} +new/torch {number}$", out, re.M)
        assert line, f"no line for {label!r} in:\n{out}"
        assert all(float(v) > 0 for v in line.groups())
    assert len(out.strip().splitlines()) == len(labels)
