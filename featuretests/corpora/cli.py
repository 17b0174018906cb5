"""``featuretests corpora``: list the registered corpora with size, languages, licence and availability here."""

from __future__ import annotations

import argparse
import json
from typing import Any

from featuretests.corpora.registry import corpus, list_corpora
from featuretests.errors import CorpusError

__all__ = ["corpora_table", "register"]


def corpora_table(data_root: str | None = None) -> list[dict[str, Any]]:
    """One row per registered corpus: name, description, format, domain, langs, licence, splits, available,
    size_bytes (None when unavailable) and missing_reason (None when available)."""
    rows = []
    for name in list_corpora():
        c = corpus(name, data_root=data_root)
        reason = c.missing_reason()
        try:
            size = c.size_bytes() if reason is None else None
        except CorpusError as exc:  # e.g. a file vanished between listing and stat
            size, reason = None, str(exc)
        rows.append(
            {
                "name": name,
                "description": c.description,
                "format": c.format,
                "domain": c.domain,
                "langs": list(c.langs),
                "licence": c.licence,
                "splits": list(c.splits),
                "available": reason is None,
                "size_bytes": size,
                "missing_reason": reason,
            }
        )
    return rows


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _cmd_corpora(args: argparse.Namespace) -> int:
    rows = corpora_table(args.data_root)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<19} {'here':<4} {'size':>9}  {'langs':<11} licence")
    for row in rows:
        here = "yes" if row["available"] else "NO"
        print(
            f"{row['name']:<19} {here:<4} {_size(row['size_bytes']):>9}  {','.join(row['langs']):<11} {row['licence']}"
        )
    missing = [row for row in rows if not row["available"]]
    for row in missing:
        print(f"\n{row['name']}: {row['missing_reason']}")
    print(f"\n{len(rows) - len(missing)} of {len(rows)} corpora available; also 'hf:<dataset>' with the network.")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``corpora`` subcommand to the ``featuretests`` parser's `subparsers`."""
    p = subparsers.add_parser("corpora", help="list the named corpora: size, languages, licence, availability")
    p.add_argument("--data-root", default=None, help="the shared corpora folder (default: $FEATURETESTS_DATA)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=_cmd_corpora)
