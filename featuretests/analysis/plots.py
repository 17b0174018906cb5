"""Self-contained SVG charts (no matplotlib): line/step charts and scatter plots a report can embed inline.

Every function returns one ``<svg>`` element as a string, with its own fonts and colours and no external
references. Non-finite points are dropped; an empty chart still renders its frame and says "no data".
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["PALETTE", "density", "line_chart", "panel_row"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
_W, _H = 360, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 26, 40


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-2:
        return f"{v:.0e}"
    return f"{v:.3g}"


def line_chart(
    series: Mapping[str, tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    log_y: bool = False,
    scatter: bool = False,
    diagonal: bool = False,
    width: int = _W,
    height: int = _H,
) -> str:
    """An SVG chart of named (x, y) series: polylines, or dots with ``scatter=True``.

    ``log_y`` plots log10(y) (points with y <= 0 are dropped) and labels the axis in powers of ten. ``diagonal``
    draws y = x (for Q-Q plots).
    """
    cleaned: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (xs, ys) in series.items():
        x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        keep = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log_y else True)
        x, y = x[keep], (np.log10(y[keep]) if log_y else y[keep])
        cleaned[name] = (x, y)
    xs_all = np.concatenate([x for x, _ in cleaned.values()] or [np.zeros(0)])
    ys_all = np.concatenate([y for _, y in cleaned.values()] or [np.zeros(0)])
    pw, ph = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="11">{html.escape(title)}</text>',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
    ]
    if xs_all.size == 0:
        out.append(f'<text x="{_LEFT + pw / 2}" y="{_TOP + ph / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(out)
    x0, x1 = float(xs_all.min()), float(xs_all.max())
    y0, y1 = float(ys_all.min()), float(ys_all.max())
    if diagonal:
        x0 = y0 = min(x0, y0)
        x1 = y1 = max(x1, y1)
    x1, y1 = (x1 if x1 > x0 else x0 + 1.0), (y1 if y1 > y0 else y0 + 1.0)

    def px(v: np.ndarray | float) -> np.ndarray:
        return _LEFT + (np.asarray(v) - x0) / (x1 - x0) * pw

    def py(v: np.ndarray | float) -> np.ndarray:
        return _TOP + ph - (np.asarray(v) - y0) / (y1 - y0) * ph

    for t in _ticks(x0, x1):
        out.append(f'<text x="{px(t):.1f}" y="{_TOP + ph + 12}" text-anchor="middle">{_fmt(t)}</text>')
    for t in _ticks(y0, y1):
        label = f"1e{t:g}" if log_y else _fmt(t)
        out.append(f'<text x="{_LEFT - 3}" y="{py(t) + 3:.1f}" text-anchor="end">{label}</text>')
        out.append(f'<line x1="{_LEFT}" x2="{_LEFT + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>')
    out.append(f'<text x="{_LEFT + pw / 2}" y="{height - 8}" text-anchor="middle">{html.escape(xlabel)}</text>')
    out.append(
        f'<text x="12" y="{_TOP + ph / 2}" text-anchor="middle" transform="rotate(-90 12 {_TOP + ph / 2})">'
        f"{html.escape(ylabel + (' (log10)' if log_y else ''))}</text>"
    )
    if diagonal:
        out.append(
            f'<line x1="{px(x0):.1f}" y1="{py(x0):.1f}" x2="{px(x1):.1f}" y2="{py(x1):.1f}" '
            'stroke="#aaa" stroke-dasharray="3,3"/>'
        )
    for i, (name, (x, y)) in enumerate(cleaned.items()):
        colour = PALETTE[i % len(PALETTE)]
        if scatter:
            out.extend(
                f'<circle cx="{a:.1f}" cy="{b:.1f}" r="1.6" fill="{colour}" fill-opacity="0.6"/>'
                for a, b in zip(px(x), py(y), strict=True)
            )
        elif x.size:
            points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(x), py(y), strict=True))
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.3"/>')
        ly = _TOP + 10 + 12 * i
        out.append(f'<rect x="{_LEFT + pw - 90}" y="{ly - 7}" width="8" height="8" fill="{colour}"/>')
        out.append(f'<text x="{_LEFT + pw - 78}" y="{ly}">{html.escape(name[:18])}</text>')
    out.append("</svg>")
    return "".join(out)


def panel_row(panels: Sequence[str], *, title: str = "") -> str:
    """Several SVG charts side by side in one SVG (each panel keeps its own size)."""
    widths = [int(p.split('width="', 1)[1].split('"', 1)[0]) for p in panels]
    heights = [int(p.split('height="', 1)[1].split('"', 1)[0]) for p in panels]
    top = 20 if title else 0
    total_w, total_h = sum(widths) or _W, (max(heights) if heights else _H) + top
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
        f'viewBox="0 0 {total_w} {total_h}" font-family="sans-serif">'
    ]
    if title:
        out.append(f'<text x="{total_w / 2}" y="14" text-anchor="middle" font-size="12">{html.escape(title)}</text>')
    x = 0
    for panel, w in zip(panels, widths, strict=True):
        out.append(f'<g transform="translate({x},{top})">{panel}</g>')
        x += w
    out.append("</svg>")
    return "".join(out)


def density(values: np.ndarray, lo: float, hi: float, n_bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, density) of `values` clipped into [lo, hi]: a histogram series for `line_chart`."""
    counts, edges = np.histogram(np.clip(values, lo, hi), bins=n_bins, range=(lo, hi), density=True)
    return (edges[:-1] + edges[1:]) / 2, counts
