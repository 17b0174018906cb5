"""``featuretests search / show / report / compare`` through `featuretests.cli.main`, on a tiny model directory and
the synthetic bracket corpus: exit codes, what they print, and the files they write."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from featuretests.cli import main

CORPUS = "synthetic-brackets"


def test_explain_ranks_labels_and_formulas(capsys: pytest.CaptureFixture[str], common: list[str]) -> None:
    """The JSON lists single labels by the metric (best first) and formulas; with labels drawn from the active set,
    the stated IoU is that of the label against the unit's top 1% on the held-out half of the documents, recomputed
    here from the token table (a drawn label through its `search` expression); with --drawn 0, on every token."""
    import numpy as np

    from featuretests.analysis.library import build_library
    from featuretests.metrics import split_by_documents
    from featuretests.session import Session

    code, out, err = run(capsys, "explain", "L0N3", "--corpus", CORPUS, "--json", "--top", "4", *common)
    assert code == 0, err
    found = json.loads(out)
    assert found["neuron"] == "L0N3" and found["labels"] > 5
    ious = [r["iou"] for r in found["ranked"]]
    assert len(ious) == 4 and ious == sorted(ious, reverse=True)
    assert found["formulas"] and found["formulas"][0]["iou"] >= ious[0] - 0.02  # a formula starts from the best atom
    s = Session(model=common[1], cache_dir=common[3], device="cpu")
    table = s.table(CORPUS)
    acts = s.acts(CORPUS, 0, "mlp.post")[:, 3].astype(np.float32)
    lib = build_library(table, top_bigrams=50, top_context=50)
    drawn = {d["label"]: d["expression"] for d in found["drawn"]}
    assert not set(drawn) & set(lib.names)  # a drawn label the library already has is not drawn again

    def mask(name: str) -> np.ndarray:
        if name in drawn:
            return np.asarray(eval(drawn[name], {"__builtins__": {}}, {"t": table}), dtype=bool)
        return np.asarray(lib.matrix[:, lib.names.index(name)], dtype=bool)

    active = acts > np.quantile(acts, 0.99)
    assert found["active"]["tokens"] == active.sum() and not found["active"]["tied"]
    rows = split_by_documents(np.asarray(table.doc), seed=0).report
    assert found["scored"] == {"tokens": int(rows.sum()), "held_out": True, "note": found["scored"]["note"]}
    for r in found["ranked"]:
        label, act = mask(r["label"])[rows], active[rows]
        assert r["iou"] == pytest.approx((label & act).sum() / (label | act).sum(), abs=1e-6), r["label"]
    # the token table: every active token string once, with its counts
    table_rows = {c["token"]: (c["active"], c["tokens"]) for c in found["active_tokens"]}
    text = table.col("text")
    assert sum(a for a, _ in table_rows.values()) == active.sum() and set(table_rows) == set(text[active])
    token, (n_active, n_total) = next(iter(table_rows.items()))
    assert (n_active, n_total) == ((text[active] == token).sum(), (text == token).sum())

    code, out, _ = run(capsys, "explain", "L0N3", "--corpus", CORPUS, "--json", "--drawn", "0", *common)
    library_only = json.loads(out)
    assert library_only["drawn"] == [] and library_only["scored"]["tokens"] == len(table)
    best = library_only["ranked"][0]
    label = mask(best["label"])
    assert best["iou"] == pytest.approx((label & active).sum() / (label | active).sum(), abs=1e-6)

    code, out, _ = run(capsys, "explain", "L0N3", "--corpus", CORPUS, "--top", "2", "--tokens", "1", *common)
    assert code == 0 and "labels by iou:" in out and "formulas by iou (up to 3 labels):" in out
    assert "tokens it is active on" in out and f"{len(table_rows) - 1} more" in out


@pytest.fixture(scope="module")
def common(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Model, cache and device options shared by the commands (one cache: the corpus is tabled and harvested once)."""
    cache = tmp_path_factory.mktemp("cli-cache")
    return ["--model", str(tiny_model_dir), "--cache-dir", str(cache), "--device", "cpu"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_ranks_units_by_the_metric(capsys: pytest.CaptureFixture[str], common: list[str]) -> None:
    code, out, err = run(capsys, "search", "t.text == '('", "--corpus", CORPUS, *common)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"t.text == '('  on {CORPUS} (quick), ranked by auroc:"
    assert "max-T over every unit searched" in out and "in-sample" in out  # what the p and the values mean
    rows = [line.split() for line in lines[1:] if line.startswith("  L")]
    assert len(rows) == 10 and all(r[0].startswith("L0N") for r in rows)
    values = [float(r[1]) for r in rows]
    assert values == sorted(values, reverse=True) and all(0.5 < v <= 1.0 for v in values[:1])
    p_values = [float(r[4]) for r in rows]
    assert all(0 < p <= 1 for p in p_values) and p_values[0] <= 0.05  # '(' is found: the best unit beats chance


def test_search_json_output(capsys: pytest.CaptureFixture[str], common: list[str]) -> None:
    code, out, err = run(capsys, "search", "t.text == ')'", "--corpus", CORPUS, "--json", "--metric", "f1", *common)
    assert code == 0, err
    found = json.loads(out)
    assert found["expression"] == "t.text == ')'" and found["corpus"] == CORPUS
    assert found["best"] == found["top"][0]["neuron"] and len(found["top"]) == 10
    assert {row["metric"] for row in found["top"]} == {"f1"}


def test_search_of_a_numeric_label_ranks_by_correlation(capsys: pytest.CaptureFixture[str], common: list[str]) -> None:
    code, out, err = run(capsys, "search", "t.pos_in_ctx", "--corpus", CORPUS, *common)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"t.pos_in_ctx  on {CORPUS} (quick), ranked by spearman:"  # not the default --metric auroc
    values = [float(line.split()[1]) for line in lines[1:] if line.startswith("  L")]
    assert len(values) == 10 and values == sorted(values, reverse=True) and -1.0 <= values[-1] <= values[0] <= 1.0


@pytest.mark.parametrize(
    ("expression", "corpus", "message"),
    [
        ("t.text == (", CORPUS, "expression 't.text == (' is not valid Python"),
        ("t.txet == '('", CORPUS, "reads unknown column 'txet'; did you mean text"),
        ("t.text == '('", "no-such-corpus", "unknown corpus 'no-such-corpus'"),
        ("t.text", CORPUS, "a search needs a boolean or numeric label; name a neuron for categorical"),
        ("t.text == 'no such token'", CORPUS, "the label is true on no token of corpus 'synthetic-brackets'"),
        ("t.text.isin(['('])", CORPUS, "raised AttributeError: 'numpy.ndarray' object has no attribute 'isin'"),
        ("(t.text == '(') and (t.pos_in_ctx > 3)", CORPUS, "combine columns with &, | and ~"),
    ],
    ids=["syntax", "unknown-column", "unknown-corpus", "categorical-label", "label-never-true", "pandas", "and"],
)
def test_search_errors_exit_2_with_the_reason(
    capsys: pytest.CaptureFixture[str], common: list[str], expression: str, corpus: str, message: str
) -> None:
    code, out, err = run(capsys, "search", expression, "--corpus", corpus, *common)
    assert code == 2 and out == ""
    assert err.startswith("featuretests search: error: ") and message in err, err


def _occurs(line: str, part: str) -> int:
    """Occurrences of `part` in `line`, overlapping ones included ("[[[" holds "[[" twice)."""
    return len(re.findall(f"(?={re.escape(part)})", line))


def test_show_prints_contexts_and_writes_the_page(
    capsys: pytest.CaptureFixture[str], common: list[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "show", "L0N3", "--corpus", CORPUS, "--out", str(tmp_path / "html"), *common)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"tiny-gelu L0N3 on {CORPUS}: max ") and "fires on" in lines[0]
    contexts = [line for line in lines if line.startswith("  +") or line.startswith("  -")]
    header = next(line for line in lines if line.startswith("  top contexts; the token is in "))
    opener, closer = header.removeprefix("  top contexts; the token is in ").removesuffix(":").split(" ")
    # bracket contexts may hold "[[" or "]]": the marker the header names occurs once per line, around the token
    assert len(contexts) == 10 and all(_occurs(line, opener) == _occurs(line, closer) == 1 for line in contexts)
    assert any(line.startswith("  boosts:") for line in lines)
    page = Path(lines[-1].removeprefix("page: "))
    assert page.parent == tmp_path / "html" and page.is_file() and "L0N3" in page.read_text()
    assert (tmp_path / "html" / "index.html").is_file()


def test_show_unknown_neuron_exits_2(capsys: pytest.CaptureFixture[str], common: list[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "show", "L0N99", "--corpus", CORPUS, "--out", str(tmp_path), *common)
    assert code == 2 and "neuron L0N99 does not exist: tiny-gelu has 32 units per layer" in err
    code, _, err = run(capsys, "show", "neuron", "--corpus", CORPUS, "--out", str(tmp_path), *common)
    assert code == 2 and "'neuron' is not a neuron id" in err


@pytest.fixture(scope="module")
def results_file(tiny_model_dir: Path, common: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results.json from a real evaluation (60 documents of the bracket corpus, for speed)."""
    import featuretests as ft
    from featuretests.corpora.registry import SyntheticCorpus
    from featuretests.report.schema import save_results
    from featuretests.report.write import assemble_results

    base = ft.corpus(CORPUS)
    small = SyntheticCorpus(
        dataclasses.replace(base.manifest, name="brackets-small", options={**base.manifest.options, "n_docs": 60})
    )

    @ft.hypothesis(small, neuron="L0N3", auroc=0.5, precision=0.0)
    def open_paren(t: Any) -> Any:
        return t.text == "("

    session = ft.Session(model=str(tiny_model_dir), device="cpu", cache_dir=common[3])
    result = session.evaluate(open_paren, test_id="hyps/test_x.py::open_paren")
    entry = {**result["hypothesis"], "status": "passed" if result["hypothesis"]["passed"] else "failed"}
    path = tmp_path_factory.mktemp("results") / "results.json"
    return save_results(assemble_results([entry], result["neurons"]), path)


def test_report_renders_summary_and_html(
    capsys: pytest.CaptureFixture[str], results_file: Path, tmp_path: Path
) -> None:
    code, out, err = run(capsys, "report", str(results_file), "--out", str(tmp_path))
    assert code == 0, err
    assert out.strip() == f"wrote {tmp_path / 'summary.md'} and {tmp_path / 'html' / 'index.html'}"
    assert "open_paren" in (tmp_path / "summary.md").read_text()
    assert "open_paren" in (tmp_path / "html" / "index.html").read_text()
    assert len(list((tmp_path / "html").glob("*L0N3*.html"))) == 1  # the neuron page


def test_report_of_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "report", str(tmp_path / "nope.json"))
    assert code == 2 and out == ""
    assert "nope.json: no such results file" in err


def test_compare_reports_a_regression_with_exit_1(
    capsys: pytest.CaptureFixture[str], results_file: Path, tmp_path: Path
) -> None:
    old = json.loads(results_file.read_text())
    new = copy.deepcopy(old)
    auroc = new["hypotheses"][0]["metrics"]["auroc"]
    auroc["value"] = round(auroc["value"] - 0.1, 6)
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps(new))

    code, out, err = run(capsys, "compare", str(results_file), str(worse))
    assert code == 1, err
    assert "hyps/test_x.py::open_paren: auroc fell from" in out and "(drop 0.1000 > allowed 0.0200)" in out
    assert out.splitlines()[-1] == "1 regression(s)"

    code, out, _ = run(capsys, "compare", str(results_file), str(worse), "--allow", "auroc=0.2")
    assert code == 0 and out.strip() == "0 regression(s)"
    code, out, _ = run(capsys, "compare", str(results_file), str(results_file))
    assert code == 0 and out.strip() == "0 regression(s)"


@pytest.mark.parametrize(
    ("allow", "message"), [("auroc", "--allow expects METRIC=DROP"), ("aurox=0.1", "got 'aurox=0.1'")]
)
def test_compare_rejects_a_bad_allowance(
    capsys: pytest.CaptureFixture[str], results_file: Path, allow: str, message: str
) -> None:
    code, _, err = run(capsys, "compare", str(results_file), str(results_file), "--allow", allow)
    assert code == 2 and message in err
