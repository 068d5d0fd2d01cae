"""The README runs as written: its CNN snippet with and without Graphviz, and its commands are
the ones CI runs."""

import re
import shutil
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", ROOT / "README.ja.md"]


def test_the_cnn_snippet_trains_and_draws(tmp_path, monkeypatch, capsys):
    readme = READMES[0]
    blocks = re.findall(r"```python\n(import minigrad\n.*?)```", readme.read_text(), re.S)
    assert len(blocks) == 1, "the README should hold one plain-Python CNN snippet"
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(blocks[0], str(readme), "exec"), {})
    accuracy = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.88 < accuracy <= 1.0
    if shutil.which("dot") is None:  # the DOT text instead, and a warning that says why
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.dot"]
        assert (tmp_path / "cnn.dot").read_text().startswith("digraph")
        assert any("apt-get install graphviz" in str(w.message) for w in caught)
    else:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.png"]
        assert (tmp_path / "cnn.png").stat().st_size > 10_000


def sh_blocks(readme: Path) -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", readme.read_text(), re.S)


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.name)
def test_the_two_commands_are_what_ci_runs(readme):
    setup, tests = sh_blocks(readme)
    steps = setup.split(" && ")
    assert steps[:2] == ["python3 -m venv .venv", ". .venv/bin/activate"]
    assert steps[-1] == "python examples/train_mnist.py"
    assert tests == ". .venv/bin/activate && pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert " && ".join(steps[:-1]) in ci.splitlines()
