#!/usr/bin/env bash
# Install featuretests into .venv. torch is installed first and pinned (2.13.0): the CPU wheel; any other torch
# makes pip fetch a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".[test]"
