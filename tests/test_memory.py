"""minigrad.memory: glibc keeps what a step frees, so the next step's arrays cost no page
faults; the environment and the setter switch it off."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

import minigrad
from minigrad import memory

glibc = pytest.mark.skipif(memory._mallopt() is None, reason="the C library is not glibc")

# A child process allocates, touches and frees an 8 MiB array 20 times and prints the page
# faults of the last 10 rounds; what it sets first is the test's.
CHILD = """
import resource, sys
import numpy as np
{setup}
def rounds(n):
    for _ in range(n):
        a = np.empty(8 << 20, np.uint8)
        a.fill(1)
        del a
rounds(10)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(10)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, minigrad.get_keep_freed_memory())
"""


def faults(setup: str, env: dict | None = None) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(setup=setup)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), out[1]


@glibc
def test_freed_memory_is_kept_after_import_and_given_back_when_switched_off():
    n_kept, state = faults("import minigrad")
    assert state == "True"
    assert n_kept < 100                     # the same 8 MiB serve every round
    n_default, state = faults("import minigrad; minigrad.set_keep_freed_memory(False)")
    assert state == "False"
    # Each round maps its 8 MiB fresh: 2048 faults of 4 KiB pages, fewer where NumPy's
    # transparent huge pages serve part of it, never as few as with the memory kept.
    assert n_default >= 10 * 100


@glibc
def test_environment_leaves_the_c_library_alone():
    env = dict(os.environ, MINIGRAD_KEEP_FREED_MEMORY="0")
    _, state = faults("import minigrad", env)
    assert state == "False"


def test_set_keep_freed_memory_rejects_non_booleans():
    with pytest.raises(TypeError, match="set_keep_freed_memory: enabled must be True or "
                                        "False, got 1"):
        minigrad.set_keep_freed_memory(1)


def test_setter_and_getter_agree():
    kept = minigrad.get_keep_freed_memory()
    try:
        minigrad.set_keep_freed_memory(False)
        assert minigrad.get_keep_freed_memory() is False
        minigrad.set_keep_freed_memory(True)
        assert minigrad.get_keep_freed_memory() is (memory._mallopt() is not None)
    finally:
        minigrad.set_keep_freed_memory(kept)


def test_import_keeps_freed_memory_on_glibc_only():
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    if os.environ.get("MINIGRAD_KEEP_FREED_MEMORY", "").strip() == "0":
        pytest.skip("MINIGRAD_KEEP_FREED_MEMORY=0 in this environment")
    assert minigrad.get_keep_freed_memory() is on_glibc
