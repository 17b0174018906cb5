#!/usr/bin/env bash
# The README's main job: install, run every research analysis on the toy models (reports/analysis/), then the
# hypothesis library against the embedded default toy model, writing reports/ (results.json, summary.md, HTML pages
# whose index links the analysis pages). A failed analysis is reported and fails the job, after the hypotheses ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1
analyses=0
.venv/bin/featuretests analyze all --out reports/analysis || analyses=$?
.venv/bin/python -m pytest hypotheses/ --ft-report-dir reports "$@"
exit "$analyses"
