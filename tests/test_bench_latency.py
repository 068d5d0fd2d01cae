"""benchmarks/bench_latency.py: one network at batch 1, two rounds; the report gives both
frameworks' times and a positive ratio (no timing is asserted)."""

import json

import pytest
from bench_scripts import load_benchmark

lat = load_benchmark("bench_latency")


def test_bench_latency_reports_both_frameworks(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "lat.json"
    results = lat.main(["--nets", "mlp", "--batches", "1", "--rounds", "2", "--calls", "1",
                        "--json", str(out)])
    assert [(r["net"], r["batch"]) for r in results] == [("mlp", 1)]
    r = results[0]
    assert r["minigrad_ms"] > 0 and r["torch_ms"] > 0 and r["ratio"] > 0
    assert json.loads(out.read_text())["results"] == results
    assert "mlp" in capsys.readouterr().out


def test_bench_latency_refuses_an_unknown_network():
    pytest.importorskip("torch")
    with pytest.raises(SystemExit):
        lat.main(["--nets", "nonet", "--rounds", "1"])
