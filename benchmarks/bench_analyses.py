"""Time of every research analysis on the 1L toy pair, at the quick and full profiles (issue 6, Speed).

Each analysis runs as its own `featuretests analyze` subprocess, as a researcher would run it, twice per profile:
first with an empty cache directory for that profile ("cold": token table, labels and activations are built), then
again ("warm": everything is read back from the cache). Printed per run: wall seconds, CPU seconds (user + system
of the child), peak RSS (the child's VmHWM polled from /proc, see peak_memory.py: it includes the pages of
memory-mapped activation stores, which the kernel can drop) and peak anonymous RSS (polled from /proc: the memory
the analysis holds itself), judged against the memory goal of the harvest (4 GB), the bound that the streaming
analyses must keep. The cold time of the first analysis of a profile includes building the shared token table and
labels, which the others then reuse: the table says which analysis paid for them.

Run: `.venv/bin/python benchmarks/bench_analyses.py [--profiles quick full] [--only weights,probes]`.
Another job on the machine slows every figure; CPU seconds are less sensitive to it than wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import status_kb

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL, MODEL_B = "toy-gelu-1l", "toy-solu-1l"
CORPUS = "python-stdlib"  # the built-in corpus: the benchmark runs on any machine
RSS_GOAL_GB = 4.0
# the demonstration arguments of `featuretests analyze all` (cli_analyze.SUITE), with its defaults; the neuron is
# found as `analyze all --neuron best` finds it (`demo_neuron`)
FILL = {"model_b": MODEL_B, "label": "t.text == ' self'"}
_NEURONS: dict[tuple[str, Path], str] = {}


def demo_neuron(profile: str, cache: Path) -> str:
    """The unit that FILL's label ranks first on CORPUS (`featuretests search --json`), once per profile and cache;
    asked for only by the first analysis that needs it, so the cold figures before it stay cold."""
    if (profile, cache) not in _NEURONS:
        cmd = [sys.executable, "-m", "featuretests.cli", "search", FILL["label"], "--corpus", CORPUS, "--json"]
        cmd += ["--model", MODEL, "--profile", profile, "--cache-dir", str(cache)]
        found = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["best"]
        print(f"demonstration neuron ({profile}): {found}, the best unit for {FILL['label']}", flush=True)
        _NEURONS[profile, cache] = found
    return _NEURONS[profile, cache]


def run_one(name: str, profile: str, cache: Path, out: Path) -> dict[str, float | int | str]:
    """Run one analysis in a child process; its wall time, CPU time, peak RSS, peak anonymous RSS and exit code.

    Peak RSS (VmHWM) counts the pages of the memory-mapped activation stores that the analysis reads: page
    cache the kernel can drop at any time. Peak anonymous RSS (polled every 0.1 s from /proc) is the memory the
    analysis itself holds, the figure the 4 GB bound is about.
    """
    cmd = [sys.executable, "-m", "featuretests.cli", "analyze", name, "--model", MODEL, "--corpus", CORPUS]
    from featuretests.cli_analyze import SUITE

    cmd += ["--profile", profile, "--cache-dir", str(cache), "--out", str(out)]
    suite = SUITE.get(name, [])
    fill = FILL | ({"neuron": demo_neuron(profile, cache)} if any("{neuron}" in a for a in suite) else {})
    cmd += [a.format(**fill) for a in suite]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_anon = peak_rss = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = status_kb(proc.pid, "RssAnon", "VmHWM")
        peak_anon = max(peak_anon, now["RssAnon"])
        peak_rss = max(peak_rss, now["VmHWM"])  # a high-water mark: only its last 0.1 s is missed
        time.sleep(0.1)
    wall = time.perf_counter() - start
    err = proc.stderr.read() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"  {name} ({profile}) exited {code}: {err.strip().splitlines()[-1:] or ''}", file=sys.stderr)
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_gb": peak_rss / 1024**2,  # KiB; not ru_maxrss, which counts this parent's memory (peak_memory.py)
        "anon_gb": peak_anon / 1024**2,
        "code": code,
    }


def main() -> int:
    from featuretests.cli_analyze import ANALYSES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["quick"], choices=["quick", "full"])
    parser.add_argument("--only", default=None, help="comma-separated analyses (default: all registered)")
    parser.add_argument("--keep", default=None, help="keep caches and outputs here (default: a temporary folder)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(ANALYSES)
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        parser.error(f"unknown analyses {unknown}; registered: {', '.join(ANALYSES)}")
    print(f"models {MODEL} (+ {MODEL_B} where the analysis compares two), corpus {CORPUS}")
    print(
        f"{'profile':<7} {'analysis':<16} {'cold wall':>9} {'cold cpu':>9} {'warm wall':>9} {'warm cpu':>9} "
        f"{'peak RSS':>9} {'peak anon':>9}  memory"
    )
    failed = 0
    with tempfile.TemporaryDirectory(prefix="ft-bench-analyses-") as scratch:
        tmp = args.keep or scratch  # a kept folder's cache makes every run "warm": pass a new folder for cold figures
        for profile in args.profiles:
            cache, out = Path(tmp) / f"cache-{profile}", Path(tmp) / f"out-{profile}"
            for name in names:
                cold = run_one(name, profile, cache, out)
                warm = run_one(name, profile, cache, out)
                rss = max(float(cold["rss_gb"]), float(warm["rss_gb"]))
                anon = max(float(cold["anon_gb"]), float(warm["anon_gb"]))
                ok = cold["code"] == warm["code"] == 0
                failed += not ok
                verdict = ("MET" if anon < RSS_GOAL_GB else "MISSED") + f" (anon < {RSS_GOAL_GB:.0f} GB)"
                print(
                    f"{profile:<7} {name:<16} {cold['wall_s']:>8.1f}s {cold['cpu_s']:>8.1f}s {warm['wall_s']:>8.1f}s "
                    f"{warm['cpu_s']:>8.1f}s {rss:>7.2f}GB {anon:>7.2f}GB  {verdict if ok else 'FAILED (see stderr)'}",
                    flush=True,
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
