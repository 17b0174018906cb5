#!/usr/bin/env bash
# The README's main job: install, then run the hypothesis library against the embedded default toy model,
# writing reports/ (results.json, summary.md, HTML pages).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
HF_HUB_OFFLINE=1 .venv/bin/python -m pytest hypotheses/ --ft-report-dir reports "$@"
