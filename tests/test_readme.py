"""The README's CNN snippet runs as written and prints what its comment says."""

import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_cnn_snippet_trains_and_draws(tmp_path, monkeypatch, capsys):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed: the snippet renders a PNG")
    blocks = re.findall(r"```python\n(import minigrad\n.*?)```", README.read_text(), re.S)
    assert len(blocks) == 1, "the README should hold one plain-Python CNN snippet"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(README), "exec"), {})
    accuracy = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.88 < accuracy <= 1.0
    assert (tmp_path / "cnn.png").stat().st_size > 10_000
