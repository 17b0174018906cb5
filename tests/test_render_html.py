"""The HTML report: structure, escaping, a 2,000-neuron layer, and a real headless Chromium (renders, no console
errors, screenshot)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from featuretests.render.browser import check_page, find_chromium
from featuretests.render.html import neuron_page_name, render_html_report

from .test_report import make_results

needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="Chromium not installed (apt-get install chromium)")


def test_index_links_hypotheses_to_neuron_pages(tmp_path: Path) -> None:
    index = render_html_report(make_results(), tmp_path)
    text = index.read_text()
    page = neuron_page_name("toy-gelu-1l/L0N7")
    assert f'href="{page}"' in text and (tmp_path / page).exists()
    assert "undefined (label true nowhere)" in text
    assert "http://" not in text and "https://" not in text, "the report must work offline (no CDN)"


def test_tokens_are_escaped_and_coloured_by_activation(tmp_path: Path) -> None:
    render_html_report(make_results(), tmp_path)
    page = (tmp_path / neuron_page_name("toy-gelu-1l/L0N7")).read_text()
    assert "&lt;b&gt;" in page and "<b>" not in page
    assert 'class="tok focus" style="background:rgba(255,140,0,1.00)"' in page  # the max token is fully orange
    assert "rgba(60,110,255" in page  # a negative activation is blue
    assert "<svg" in page and "Direct logit attribution" in page


def _layer_results(n: int) -> dict:
    results = make_results()
    template = results["neurons"].pop("toy-gelu-1l/L0N7")
    for i in range(n):
        data = copy.deepcopy(template)
        data["summary"]["max"] = float(i)
        results["neurons"][f"toy-gelu-1l/L0N{i}"] = data
    return results


def test_a_layer_of_2000_neurons_gives_small_pages(tmp_path: Path) -> None:
    index = render_html_report(_layer_results(2000), tmp_path)
    assert len(list(tmp_path.glob("neuron-*.html"))) == 2000
    assert index.stat().st_size < 1_000_000, "the index must stay light enough to open and filter"


@needs_chromium
def test_report_renders_in_chromium_without_console_errors(tmp_path: Path) -> None:
    index = render_html_report(_layer_results(2000), tmp_path / "html")
    for page in (index, tmp_path / "html" / neuron_page_name("toy-gelu-1l/L0N1999")):
        shot = tmp_path / (page.stem + ".png")
        check = check_page(page, shot)
        assert check.ok, check
        assert shot.stat().st_size > 5_000  # a real picture, not an empty page


@needs_chromium
def test_the_browser_check_catches_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>notDefined();</script></body></html>")
    check = check_page(page, tmp_path / "broken.png")
    assert not check.ok and any("notDefined" in e for e in check.console_errors)


def test_analysis_pages_are_self_contained_and_linked_from_the_index(tmp_path: Path) -> None:
    from featuretests.render.html import render_analysis_page

    index = render_html_report(_layer_results(3), tmp_path / "html")
    assert "Analyses" not in index.read_text()  # no analysis folder yet: no section
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20"/></svg>'
    page = render_analysis_page(
        "distributions", "| unit | skew |\n|---|---|\n| <x> | 2.5 |", {"hist": svg}, tmp_path / "analysis"
    )
    text = page.read_text()
    assert svg in text and "&lt;x&gt;" in text and "<x>" not in text  # figures inline, tables escaped
    assert "<script" not in text and "https://" not in text  # offline: nothing fetched
    index = render_html_report(_layer_results(3), tmp_path / "html")
    assert 'href="../analysis/distributions.html"' in index.read_text()
    if find_chromium() is not None:
        check = check_page(page, tmp_path / "analysis.png")
        assert check.ok, check
