"""Open a rendered page in a real headless Chromium: take a screenshot and collect console errors.

Used by the test suite and by `featuretests report --check`. Chromium is found on PATH (`chromium`,
`chromium-browser`, `google-chrome`) or through $FEATURETESTS_CHROMIUM.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BrowserCheck", "check_page", "find_chromium"]

_CONSOLE = re.compile(r'CONSOLE\(\d+\)\] "(?P<msg>.*?)", source: (?P<src>\S*)|:CONSOLE:\d+\] "(?P<msg2>.*?)"')


@dataclass(frozen=True)
class BrowserCheck:
    """What Chromium saw: the screenshot file (None if none was written) and console messages that are errors."""

    screenshot: Path | None
    console_errors: list[str]
    returncode: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.screenshot is not None and not self.console_errors


def find_chromium() -> str | None:
    env = os.environ.get("FEATURETESTS_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def check_page(
    page: Path, screenshot: Path, *, width: int = 1280, height: int = 1000, timeout: float = 60
) -> BrowserCheck:
    """Load `page` (a local file) headless, write a PNG screenshot, and return console errors.

    Console lines are read from Chromium's stderr log. Headless Chromium logs every console message at INFO without
    its level, so every console message counts as an error: the report's pages log nothing when they work.
    """
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError(
            "no Chromium found: install it (apt-get install chromium) or set $FEATURETESTS_CHROMIUM"
        )
    screenshot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="ft-chromium-") as profile:
        cmd = [
            exe,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--log-level=0",
            f"--window-size={width},{height}",
            f"--screenshot={screenshot}",
            page.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    errors = []
    for line in proc.stderr.splitlines():
        if ":CONSOLE" not in line and "CONSOLE(" not in line:
            continue
        m = _CONSOLE.search(line)
        msg = (m.group("msg") or m.group("msg2")) if m else line
        errors.append(msg)
    return BrowserCheck(screenshot if screenshot.exists() else None, errors, proc.returncode)
