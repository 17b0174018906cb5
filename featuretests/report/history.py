"""Run history: every run appended to an SQLite database (``reports/history.sqlite``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["append_run", "load_runs"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    git_commit TEXT,
    model TEXT,
    profile TEXT,
    results TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    hypothesis TEXT NOT NULL,
    status TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, hypothesis, metric)
);
"""


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30)
    conn.executescript(_SCHEMA)
    return conn


def append_run(results: dict[str, Any], path: Path) -> int:
    """Append one run (its results document) and its metric values; return the run id. One transaction."""
    prov = results["provenance"]
    with _connect(path) as conn:
        cur = conn.execute(
            "INSERT INTO runs (created, git_commit, model, profile, results) VALUES (?, ?, ?, ?, ?)",
            (
                prov.get("created"),
                (prov.get("git") or {}).get("commit"),
                (prov.get("model") or {}).get("name"),
                prov.get("profile"),
                json.dumps(results, allow_nan=False),
            ),
        )
        run_id = int(cur.lastrowid or 0)
        rows = [
            (run_id, h["id"], h["status"], metric, m.get("value"))
            for h in results["hypotheses"]
            for metric, m in h["metrics"].items()
        ]
        conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", rows)
    conn.close()
    return run_id


def load_runs(path: Path, *, hypothesis: str | None = None, metric: str | None = None) -> list[dict[str, Any]]:
    """Metric values over runs, oldest first, optionally for one hypothesis and metric."""
    if not Path(path).exists():
        return []
    query = (
        "SELECT runs.id, runs.created, runs.git_commit, metrics.hypothesis, metrics.status, metrics.metric, "
        "metrics.value FROM metrics JOIN runs ON runs.id = metrics.run_id WHERE 1=1"
    )
    args: list[str] = []
    if hypothesis:
        query += " AND metrics.hypothesis = ?"
        args.append(hypothesis)
    if metric:
        query += " AND metrics.metric = ?"
        args.append(metric)
    with _connect(Path(path)) as conn:
        rows = conn.execute(query + " ORDER BY runs.id", args).fetchall()
    conn.close()
    keys = ("run", "created", "commit", "hypothesis", "status", "metric", "value")
    return [dict(zip(keys, row, strict=True)) for row in rows]
