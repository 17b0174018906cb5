#!/usr/bin/env bash
# Here (a machine with pip access): fetch into .whl/ the wheels that the GPU check (scripts/device_check.sh) needs
# and the device machine's image lacks or holds at another version: TransformerLens and what it imports on the
# harvest path. Versions are read from .venv, so the device runs what CI here runs. PYVER: the device's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER="${PYVER:-3.12}"
PY="${PY:-.venv/bin/python}"  # the Python whose package versions are pinned
PACKAGES=(transformer-lens transformers huggingface_hub tokenizers datasets dill multiprocess kernels truststore
  httpx2 httpcore2 beartype typeguard fancy-einsum googleapis-common-protos)
pins=$("$PY" - "${PACKAGES[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        sys.exit(f"{name} is not installed for {sys.executable}: run scripts/install.sh first")
PY
)
rm -rf .whl && mkdir -p .whl
platforms=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do platforms+=(--platform "${p}_x86_64"); done
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${platforms[@]}" -d .whl $pins
du -sh .whl
