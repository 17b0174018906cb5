#!/usr/bin/env bash
# Install featuretests into .venv. torch is installed first and pinned (2.13.0): the CPU wheel; any other torch
# makes pip fetch a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".[test]"
# The HTML report is checked in a real headless Chromium by the test suite. Install it from Debian when it is
# missing and we may (root with apt-get); otherwise those tests skip and say so.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && [ "$(id -u)" = 0 ] \
  && command -v apt-get >/dev/null; then
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }) \
    || echo "install: could not install chromium; the HTML-in-Chromium tests will skip" >&2
fi
