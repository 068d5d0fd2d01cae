"""benchmarks/bench_memory.py: the smallest run has its structure, and its minigrad workers
differ in exactly the setting they are meant to."""


import pytest
from bench_scripts import load_benchmark

from minigrad import memory


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_memory")


@pytest.mark.parametrize("frameworks", [["minigrad"], ["minigrad", "torch"]])
def test_smallest_run_has_the_result_structure(bench, frameworks, tmp_path, capsys):
    if "torch" in frameworks:
        pytest.importorskip("torch")
    out = tmp_path / "memory.json"
    results = bench.main(["--nets", "mlp", "--frameworks", *frameworks, "--threads", "1",
                          "--rounds", "2", "--steps", "1", "--json", str(out)])
    res = results["mlp"]
    labels = [label for label, _, _ in bench.configs(frameworks)]
    assert list(res["medians"]) == labels and len(labels) == 2 * len(frameworks)
    on_glibc = memory._mallopt() is not None
    assert res["kept"]["minigrad kept"] is on_glibc
    assert res["kept"]["minigrad glibc default"] is False
    for label in labels:
        assert len(res["samples"][label]) == 2
        m = res["medians"][label]
        assert m["wall_ms"] > 0 and m["cpu_ms"] > 0 and m["faults"] >= 0 and m["sys_ms"] >= 0
    printed = capsys.readouterr().out
    assert "minigrad kept ÷ glibc default" in printed and out.exists()
