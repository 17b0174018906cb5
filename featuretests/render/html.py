"""The offline HTML report: ``index.html`` (hypotheses and their verdicts, a filterable neuron table) and one page
per neuron in the Neuroscope spirit: top activating contexts with tokens coloured by activation, examples from each
activation band, the activation histogram (inline SVG), top boosted and suppressed output tokens (direct logit
attribution) and the best-matching hypotheses.

Self-contained: inline CSS and a few lines of inline JavaScript, no CDN, so it opens offline. Each neuron page is
its own small file, so a layer of thousands of neurons stays usable.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

from featuretests.render.markdown import format_metric
from featuretests.render.verdict import decision_text, evidence_lines

__all__ = ["neuron_page_name", "render_html_report"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:75rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;
vertical-align:top}th{background:#f3f3f3}.passed,.xpassed{color:#176f2c}.failed,.error{color:#b00020}
.xfailed,.skipped{color:#8a6d00}.ctx{font-family:ui-monospace,monospace;white-space:pre-wrap;font-size:.85rem;
border-bottom:1px solid #eee;padding:.2rem 0}.tok{border-radius:2px}.focus{outline:2px solid #333}
.muted{color:#777}input{padding:.3rem;width:20rem}code{background:#f6f6f6;padding:0 .2rem}
"""

_FILTER_JS = """
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll('#neurons tbody tr').forEach(function (tr) {
    tr.style.display = tr.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
  });
});
"""


def neuron_page_name(key: str) -> str:
    """File name of the page of neuron `key` (e.g. ``toy-gelu-1l/L0N412`` -> ``neuron-toy-gelu-1l-L0N412.html``)."""
    return "neuron-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", key) + ".html"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, script: str = "") -> str:
    js = f"<script>{script}</script>" if script else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>{body}{js}</body></html>\n"
    )


def _colour(act: float, scale: float) -> str:
    """Background for a token: orange for positive activations, blue for negative, alpha by |act| / scale."""
    if scale <= 0:
        return "transparent"
    alpha = min(1.0, abs(act) / scale)
    return f"rgba(255,140,0,{alpha:.2f})" if act >= 0 else f"rgba(60,110,255,{alpha:.2f})"


def _context_html(ctx: dict[str, Any], scale: float) -> str:
    parts = []
    for i, (tok, act) in enumerate(zip(ctx["tokens"], ctx["acts"], strict=True)):
        cls = "tok focus" if i == ctx.get("focus") else "tok"
        parts.append(f'<span class="{cls}" style="background:{_colour(act, scale)}" title="{act:.3f}">{_e(tok)}</span>')
    label = f'<span class="muted">{ctx.get("activation", 0):.3f} · {_e(ctx.get("doc_id", ""))}</span> '
    return f'<div class="ctx">{label}{"".join(parts)}</div>'


def _histogram_svg(hist: dict[str, Any], width: int = 520, height: int = 140) -> str:
    counts = hist.get("counts") or []
    edges = hist.get("edges") or []
    if not counts or len(edges) != len(counts) + 1:
        return '<p class="muted">no histogram</p>'
    peak = max(counts) or 1
    bar_w = width / len(counts)
    bars = "".join(
        f'<rect x="{i * bar_w:.1f}" y="{height - 20 - (c / peak) * (height - 30):.1f}" width="{max(bar_w - 1, 1):.1f}"'
        f' height="{(c / peak) * (height - 30):.1f}" fill="#e07b00"><title>[{edges[i]:.3g}, {edges[i + 1]:.3g}): '
        f"{c}</title></rect>"
        for i, c in enumerate(counts)
    )
    axis = (
        f'<text x="0" y="{height - 4}" font-size="11">{edges[0]:.3g}</text>'
        f'<text x="{width}" y="{height - 4}" font-size="11" text-anchor="end">{edges[-1]:.3g}</text>'
    )
    return f'<svg width="{width}" height="{height}" role="img" aria-label="activation histogram">{bars}{axis}</svg>'


def _neuron_page(key: str, data: dict[str, Any]) -> str:
    contexts = data.get("top_contexts", [])
    scale = max((abs(c.get("activation", 0.0)) for c in contexts), default=1.0) or 1.0
    summary = data.get("summary", {})
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in summary.items())
    body = [
        f'<p><a href="index.html">← index</a></p><h1>{_e(key)}</h1>',
        f"<p>unit kind <code>{_e(data.get('unit_kind', 'mlp.post'))}</code></p>",
        f"<h2>Activation distribution</h2>{_histogram_svg(data.get('histogram', {}))}<table>{rows}</table>",
        "<h2>Top activating contexts</h2>" + "".join(_context_html(c, scale) for c in contexts),
    ]
    for band in data.get("bands", []):
        lo, hi = band["range"]
        body.append(f"<h3>Band [{lo:.3g}, {hi:.3g})</h3>" + "".join(_context_html(c, scale) for c in band["examples"]))
    dla = data.get("dla") or {}
    if dla:
        body.append(
            "<h2>Direct logit attribution (W_out · W_U)</h2><table><tr><th>boosted</th><th>suppressed</th></tr>"
        )
        for (bt, bv), (st, sv) in zip(dla.get("boosted", []), dla.get("suppressed", []), strict=False):
            body.append(f"<tr><td><code>{_e(bt)}</code> {bv:+.3f}</td><td><code>{_e(st)}</code> {sv:+.3f}</td></tr>")
        body.append("</table>")
    hyps = data.get("hypotheses", [])
    if hyps:
        body.append("<h2>Best-matching hypotheses</h2><table><tr><th>hypothesis</th><th>metric</th><th>value</th></tr>")
        body += [
            f"<tr><td>{_e(h['name'])}</td><td>{_e(h['metric'])}</td><td>{_e(_fmt(h['value']))}</td></tr>" for h in hyps
        ]
        body.append("</table>")
    return _page(key, "".join(body))


def _fmt(v: Any) -> str:
    if v is None:
        return "undefined"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _index_page(results: dict[str, Any], neuron_keys: list[str], extra: str = "") -> str:
    prov = results["provenance"]
    model = prov.get("model", {})
    body = [
        "<h1>featuretests report</h1>",
        f"<p>model <code>{_e(model.get('name'))}</code> · profile <code>{_e(prov.get('profile'))}</code> · "
        f"commit <code>{_e(str((prov.get('git') or {}).get('commit') or 'unknown')[:10])}</code> · "
        f"{_e(prov.get('created', ''))}</p>",
        "<h2>Hypotheses</h2><p>A threshold is met when the one-sided 95% lower bound of its metric clears it; a "
        "search chooses its unit on a third of the documents and is judged on the rest.</p>"
        "<table><tr><th>verdict</th><th>hypothesis</th><th>unit</th><th>thresholds</th>"
        "<th>measured [bounds]</th><th>how decided, and the evidence beside it</th></tr>",
    ]
    for h in results["hypotheses"]:
        unit = h.get("neuron") or h.get("target", "")
        page_key = f"{model.get('name')}/{unit}"
        unit_html = f'<a href="{neuron_page_name(page_key)}">{_e(unit)}</a>' if page_key in neuron_keys else _e(unit)
        thresholds = ", ".join(f"{k} ≥ {v:g}" for k, v in h["thresholds"].items())
        measured = "<br>".join(f"{_e(k)} {_e(format_metric(h['metrics'].get(k)))}" for k in h["thresholds"])
        evidence = [decision_text(h)] + [line.strip() for line in evidence_lines(h)] if h.get("decision") else []
        body.append(
            f'<tr><td class="{_e(h["status"])}">{_e(h["status"])}</td><td title="{_e(h.get("description", ""))}">'
            f"{_e(h['name'])}</td><td>{unit_html}</td><td>{_e(thresholds)}</td><td>{measured}</td>"
            f"<td>{'<br>'.join(_e(e) for e in evidence)}</td></tr>"
        )
    body.append("</table>")
    if neuron_keys:
        body.append('<h2>Neurons</h2><input id="filter" placeholder="filter neurons" aria-label="filter neurons">')
        body.append(
            '<table id="neurons"><thead><tr><th>neuron</th><th>max</th><th>best hypothesis</th></tr></thead><tbody>'
        )
        for key in neuron_keys:
            data = results["neurons"][key]
            best = (data.get("hypotheses") or [{}])[0]
            body.append(
                f'<tr><td><a href="{neuron_page_name(key)}">{_e(key)}</a></td>'
                f"<td>{_e(_fmt(data.get('summary', {}).get('max')))}</td><td>{_e(best.get('name', ''))}</td></tr>"
            )
        body.append("</tbody></table>")
    body.append(extra)
    return _page("featuretests report", "".join(body), _FILTER_JS if neuron_keys else "")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_analysis_page(name: str, markdown: str, svgs: dict[str, str], out_dir: Path) -> Path:
    """Write ``<name>.html`` under `out_dir`: the analysis's Markdown tables as text and its SVG figures inline.

    Self-contained (no CDN, no script), so it opens offline; the main report's index links every such page found in
    the ``analysis`` folder beside its ``html`` folder.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = "".join(f"<figure>{svg}<figcaption>{_e(fig)}</figcaption></figure>" for fig, svg in svgs.items())
    body = f"<h1>analysis: {_e(name)}</h1><pre>{_e(markdown)}</pre>{figures}"
    path = out_dir / f"{name}.html"
    _write(path, _page(f"featuretests analysis: {name}", body))
    return path


def _analysis_links(out_dir: Path) -> str:
    pages = sorted((out_dir.parent / "analysis").glob("*.html"))
    if not pages:
        return ""
    items = "".join(f'<li><a href="../analysis/{_e(p.name)}">{_e(p.stem)}</a></li>' for p in pages)
    return f"<h2>Analyses</h2><ul>{items}</ul>"


def render_html_report(results: dict[str, Any], out_dir: Path) -> Path:
    """Write ``index.html`` and one page per neuron in ``results["neurons"]`` under `out_dir`; return the index.

    Analysis pages written by ``featuretests analyze`` into ``<out_dir>/../analysis/`` are linked from the index.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    neurons = results.get("neurons", {})
    keys = sorted(neurons)
    for key in keys:
        _write(out_dir / neuron_page_name(key), _neuron_page(key, neurons[key]))
    index = out_dir / "index.html"
    page = _index_page(results, keys, _analysis_links(out_dir))
    _write(index, page)
    return index
