"""featuretests.models.cpu_memory: the allocator policy that loading a model on the CPU applies.

Each case runs in a fresh interpreter: the policy is process-wide and set once.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from featuretests.models.cpu_memory import OPT_OUT

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the policy applies to glibc only")

# allocate, touch and free a 48 MB tensor batch after batch (above glibc's largest mmap threshold, as a batch's
# attention tensors are; torch, as numpy asks for huge pages that fault 2 MB at once), counting minor page faults
# over 20 batches after 10 of warm-up (under the policy the heap first grows by up to a few such blocks, as small
# allocations land between them: measured 1-4 growths in 60 batches, then none); then report whether the policy is
# in force
_CHILD = """
import json, resource, sys
import torch
if sys.argv[1] == "model":
    from featuretests.models.loader import build_model
    build_model({"n_layers": 1, "d_model": 16, "n_heads": 2, "d_head": 8, "d_mlp": 32, "d_vocab": 50, "n_ctx": 8,
                 "act_fn": "gelu", "normalization_type": "LN", "seed": 0, "model_name": "t"}, device="cpu")
from featuretests.models import cpu_memory
for batch in range(30):
    if batch == 10:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.empty(48 << 20, dtype=torch.uint8)
    block.fill_(1)
    del block
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"faults": faults, "applied": cpu_memory._applied, "policy": cpu_memory.allocator_policy()}))
"""


def _child(mode: str, *, opt_out: bool) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != OPT_OUT}
    if opt_out:
        env[OPT_OUT] = "1"
    done = subprocess.run([sys.executable, "-c", _CHILD, mode], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_loading_a_cpu_model_stops_refaulting_freed_memory() -> None:
    default = _child("model", opt_out=True)
    tuned = _child("model", opt_out=False)
    assert default["applied"] is False and OPT_OUT in str(default["policy"])
    assert tuned["applied"] is True and "M_MMAP_MAX 0" in str(tuned["policy"])
    # 20 x 48 MB = 246k pages: glibc's defaults fault every one in again; the policy, warmed up, reuses its heap
    assert int(default["faults"]) > 200_000
    assert int(tuned["faults"]) < int(default["faults"]) / 5


@glibc_only
def test_the_policy_is_not_applied_until_a_cpu_model_is_built() -> None:
    untouched = _child("none", opt_out=False)
    assert untouched["applied"] is None  # importing featuretests changes nothing
    assert int(untouched["faults"]) > 200_000


def test_keep_freed_memory_is_idempotent() -> None:
    from featuretests.models.cpu_memory import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() is first
