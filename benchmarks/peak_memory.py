"""Peak resident memory of one process, read so that its parent's memory does not leak into it.

Why not `getrusage(RUSAGE_CHILDREN).ru_maxrss`: Linux carries the high-water mark of the memory a process had
before `exec` into its ru_maxrss, and Python's subprocess starts a child with vfork, whose memory before exec is
its parent's. A child started by a 3 GB parent reports a 3 GB ru_maxrss, in RUSAGE_SELF and in the parent's
RUSAGE_CHILDREN alike, even if it never holds 20 MB (measured: /proc's VmHWM said 13 MB). bench_harvest's 1M-token
child, started by a parent that held a gelu-1l-shaped model, reported 5.8 GB this way; started by a small parent,
0.95 GB. VmHWM in /proc/<pid>/status is the high-water mark of the process's own address space since its exec.
"""

from __future__ import annotations

import os
import resource

__all__ = ["own_peak_rss_gb", "status_kb"]

_GB_PER_KB = 1 / 1024**2


def status_kb(pid: int | str, field: str) -> int:
    """A `field` (VmHWM, RssAnon, ...) of /proc/<pid>/status in KiB; 0 when the process or the field is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def own_peak_rss_gb() -> float:
    """This process's peak RSS in GB since its exec (VmHWM); ru_maxrss where /proc is missing (see above)."""
    hwm = status_kb("self", "VmHWM") if os.path.exists("/proc/self/status") else 0
    if hwm:
        return hwm * _GB_PER_KB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _GB_PER_KB  # KiB on Linux
