"""docs/research-map.md answers every research problem once, and its tally matches its rows."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

MAP = Path(__file__).resolve().parents[1] / "docs" / "research-map.md"


def _rows() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in MAP.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 4 and re.fullmatch(r"9\.\d+", cells[1]):
            assert cells[1] not in rows, f"problem {cells[1]} has two rows"
            rows[cells[1]] = cells[3].split(" (")[0]
    return rows


def test_every_problem_has_one_row_with_a_known_status() -> None:
    rows = _rows()
    assert sorted(rows, key=lambda p: int(p.split(".")[1])) == [f"9.{i}" for i in range(1, 64)]
    assert set(rows.values()) <= {"covered", "partly", "not yet"}


def test_the_tally_counts_the_rows() -> None:
    counts = Counter(_rows().values())
    tally = re.search(r"Tally: (\d+) covered, (\d+) partly, (\d+) not yet", MAP.read_text(encoding="utf-8"))
    assert tally is not None
    assert [int(x) for x in tally.groups()] == [counts["covered"], counts["partly"], counts["not yet"]]
