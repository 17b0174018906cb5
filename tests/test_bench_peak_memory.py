"""The benchmarks' peak-memory reading (benchmarks/peak_memory.py) is the child's own, not its parent's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

CHILD = f"""
import resource, sys
sys.path.insert(0, {str(BENCHMARKS)!r})
from peak_memory import own_peak_rss_gb
import numpy as np
held = np.ones(int(sys.argv[1]) * 1024**2 // 8)  # touched: resident
print(own_peak_rss_gb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM needs Linux's /proc")
def test_a_child_of_a_large_parent_reports_its_own_peak() -> None:
    _parent = np.ones(1024**3 // 8)  # 1 GiB resident in this process when the child starts (alive to the end)
    out = subprocess.run([sys.executable, "-c", CHILD, "300"], check=True, capture_output=True, text=True).stdout
    own, ru_maxrss = map(float, out.split())
    assert 0.3 < own < 0.8  # its 300 MiB and the interpreter, numpy included
    # what the benchmarks read before: the parent's memory (vfork, then exec) counted as the child's
    assert ru_maxrss > 1.0
