#!/usr/bin/env bash
# The README's test command: install, then run the test suite offline (the hub is never contacted).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
HF_HUB_OFFLINE=1 .venv/bin/python -m pytest "$@"
