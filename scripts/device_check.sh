#!/usr/bin/env bash
# On the device machine (GPU), from the repo root, with .whl carried (scripts/device_wheels.sh made it here):
#   bash scripts/device_check.sh
# Installs the carried wheels beside the image's torch, then runs the CUDA checks of the harvest: the CUDA-only test
# and the harvest tests, and bench_harvest on the GPU (two model shapes). Logs go to $OUT (or ./device-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-device-out}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "installing .whl failed: run scripts/device_wheels.sh here and carry .whl"; exit 2; }
export PYTHONPATH="/tmp/site:$PWD" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 - <<'PY' 2>&1 | tee "$out/versions.txt"
from importlib.metadata import version

import torch
import transformer_lens  # noqa: F401  (fails here if a carried wheel is missing)

gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print("torch", torch.__version__, "GPU:", gpu)
print(*(f"{n} {version(n)}" for n in ("transformer-lens", "transformers", "numpy")))
PY
rc=0
python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_harvest_summaries.py tests/test_harvest_store.py \
  tests/test_harvest_resume.py tests/test_models_loader.py 2>&1 | tee "$out/pytest.txt" || rc=1
device=cuda
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || device=cpu
for model in random random-gelu-1l; do
  python3 benchmarks/bench_harvest.py --device "$device" --model "$model" --tokens "${TOKENS:-400000}" --repeats 3 \
    --rss-tokens 0 2>&1 | tee "$out/bench-$model.txt" || rc=1
done
exit $rc
