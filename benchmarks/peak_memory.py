"""Peak resident memory of one process, read so that its parent's memory does not leak into it.

Why not `getrusage(RUSAGE_CHILDREN).ru_maxrss`: Linux carries the high-water mark of the memory a process had
before `exec` into its ru_maxrss, and Python's subprocess starts a child with vfork, whose memory before exec is
its parent's. A child started by a 3 GB parent reports a 3 GB ru_maxrss, in RUSAGE_SELF and in the parent's
RUSAGE_CHILDREN alike, even if it never holds 20 MB (measured: /proc's VmHWM said 13 MB). bench_harvest's 1M-token
child, started by a parent that held a gelu-1l-shaped model, reported 5.8 GB this way; started by a small parent,
0.95 GB. VmHWM in /proc/<pid>/status is the high-water mark of the process's own address space since its exec.
"""

from __future__ import annotations

import resource

__all__ = ["own_peak_rss_gb", "status_kb"]

_GB_PER_KB = 1 / 1024**2


def status_kb(pid: int | str, *fields: str) -> dict[str, int]:
    """`fields` (VmHWM, RssAnon, ...) of /proc/<pid>/status in KiB, read in one pass; 0 for any that is missing
    (the process is gone, or there is no /proc)."""
    found = dict.fromkeys(fields, 0)
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name in found:
                    found[name] = int(rest.split()[0])
    except OSError:
        pass
    return found


def own_peak_rss_gb() -> float:
    """This process's peak RSS in GB since its exec (VmHWM); ru_maxrss where /proc is missing (see above)."""
    hwm = status_kb("self", "VmHWM")["VmHWM"]
    if hwm:
        return hwm * _GB_PER_KB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _GB_PER_KB  # KiB on Linux
