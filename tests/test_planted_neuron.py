"""End to end on a neuron whose meaning is known: weights edited so that one MLP neuron fires exactly on a set of
token ids, then the real pipeline (token table -> harvest -> search) must find it and name the set.

The plant, in a tiny 1L GELU model built from a config: a unit direction v of the residual stream, orthogonal to the
all-ones vector (so LayerNorm's centring leaves it alone), is projected out of the token and position embeddings and
out of the attention output (weights and bias), so no token's residual has a v component; then alpha * v is added
to the embeddings of the planted tokens. Before the MLP, LayerNorm divides by the residual's scale, so v . LN(x) is
exactly 0 for every other token and close to sqrt(d_model) for a planted one (alpha dominates the scale). The
neuron reads v (its W_in row is beta * v over the LN weight, its bias cancels the LN bias): pre-activation
beta * (v . n) - 2, i.e. -2 (GELU ~ -0.05, silent) elsewhere and ~ +6 on the planted tokens.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from featuretests.corpora.documents import Document
from featuretests.harvest import harvest
from featuretests.labels import GenericLabeller
from featuretests.search import rank_labels, rank_units
from featuretests.tokens import build_token_table

from .conftest import _SAMPLE, tiny_config

PLANTED_UNIT = 13
HOOK = "blocks.0.mlp.hook_post"
ALPHA, BETA, BIAS = 60.0, 2.0, -2.0


def _documents(n_docs: int = 120, words_per_doc: int = 90, seed: int = 0) -> list[Document]:
    """Words of the tokenizer's training text drawn with Zipf frequencies: some tokens are common, some rare."""
    rng = np.random.default_rng(seed)
    vocab = sorted(set(_SAMPLE.split()))
    words = np.array(vocab)[rng.permutation(len(vocab))]  # which words are frequent: a seeded choice
    p = 1.0 / np.arange(1, len(words) + 1)
    return [
        Document(f"planted/{i}", " ".join(rng.choice(words, size=words_per_doc, p=p / p.sum())), "en", "prose")
        for i in range(n_docs)
    ]


def _plant(bridge: Any, token_ids: list[int], unit: int, seed: int = 0) -> None:
    """Edit `bridge` so that MLP neuron `unit` of layer 0 fires on `token_ids` only (see the module docstring)."""
    import torch

    sd = {k: v.detach().clone() for k, v in bridge.state_dict().items()}  # nn.Linear layout: out = x @ W.T + b
    d_model = sd["embed.weight"].shape[1]
    v = torch.from_numpy(np.random.default_rng(seed).standard_normal(d_model)).float()
    v -= v.mean()  # orthogonal to all-ones: LayerNorm's centring does not touch it
    v /= v.norm()
    for name in ("embed.weight", "pos_embed.weight"):  # rows are residual vectors
        sd[name] -= torch.outer(sd[name] @ v, v)
    sd["blocks.0.attn.o.weight"] -= torch.outer(v, v @ sd["blocks.0.attn.o.weight"])
    sd["blocks.0.attn.o.bias"] -= v * (v @ sd["blocks.0.attn.o.bias"])
    sd["embed.weight"][token_ids] += ALPHA * v
    ln_w, ln_b = sd["blocks.0.ln2.weight"], sd["blocks.0.ln2.bias"]
    assert ln_w.abs().min() > 0.1, "dividing by the LayerNorm weight needs it away from 0"
    row = BETA * v / ln_w  # so that row . (ln_w * n + ln_b) = BETA * (v . n) + row . ln_b
    sd["blocks.0.mlp.in.weight"][unit] = row
    sd["blocks.0.mlp.in.bias"][unit] = BIAS - row @ ln_b
    bridge.load_state_dict(sd, strict=True)


def _readable(text: str) -> bool:
    """Not blank, not a lone byte fragment (several of those decode to the same U+FFFD)."""
    return bool(text.strip()) and "\ufffd" not in text


def _token_column(text: str, token_id: int) -> str:
    return f"token == {text!r} (id {token_id})"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> dict[str, Any]:
    """The edited model, the token table of the documents, the planted token ids and the harvested activations."""
    from featuretests.models.loader import build_model, load_model_dir, save_model_dir

    root = tmp_path_factory.mktemp("planted")
    docs = _documents()
    key = hashlib.sha256("\n".join(d.text for d in docs).encode()).hexdigest()
    config = tiny_config(seed=3, model_name="tiny-planted")
    table = build_token_table(
        docs,
        tiny_tokenizer,
        n_ctx=config["n_ctx"],
        max_tokens=None,
        corpus_name="planted",
        corpus_hash=key,
        cache_dir=None,
        labellers=[GenericLabeller()],
    )
    # three readable tokens that together are ~0.5% of the tokens: rarer than the 1% that rank_labels' default
    # quantile (0.99) marks as active, frequent enough for its min_positives (10) on their own
    ids, counts = np.unique(table.token_id, return_counts=True)
    texts = {int(i): t for i, t in zip(table.token_id, table.text, strict=True)}
    rare = [int(i) for i, c in zip(ids, counts, strict=True) if 40 <= c <= 80 and _readable(texts[int(i)])]
    token_ids = sorted(np.random.default_rng(1).choice(rare, size=3, replace=False).tolist())

    bridge = build_model(config, tiny_tokenizer)
    _plant(bridge, token_ids, PLANTED_UNIT)
    model = load_model_dir(save_model_dir(bridge, tiny_tokenizer, config, root / "model", fp16=False), device="cpu")

    windows, rows = table.windows()  # what Session.store does
    valid = rows >= 0
    assert np.array_equal(rows[valid], np.arange(len(table)))
    store = harvest(model, windows, valid, key=str(table.meta["key"]), cache_dir=root / "acts", hooks=[HOOK])
    acts = np.asarray(store.acts(HOOK), dtype=np.float32)
    return {"table": table, "token_ids": token_ids, "texts": texts, "acts": acts, "store": store}


def test_the_plant_fires_on_the_set_and_nowhere_else(planted: dict[str, Any]) -> None:
    acts, table = planted["acts"], planted["table"]
    in_set = np.isin(table.token_id, planted["token_ids"])
    unit = acts[:, PLANTED_UNIT]
    assert 0.002 < in_set.mean() < 0.008
    assert unit[in_set].min() > 4.0  # fires on every occurrence, whatever the context
    assert unit[~in_set].max() < 0.0  # silent (GELU(-2) ~ -0.05) everywhere else
    # the harvest's summary of the unit agrees: its top contexts are planted tokens
    top = planted["store"].top_examples(HOOK, PLANTED_UNIT)
    assert top and all(in_set[e.row] for e in top)


def test_rank_units_puts_the_planted_neuron_first(planted: dict[str, Any]) -> None:
    acts, table = planted["acts"], planted["table"]
    label = np.isin(table.token_id, planted["token_ids"])  # the hypothesis "token in the set"
    ranking = rank_units(
        acts,
        label,
        np.asarray(table.doc),
        metric="f1",
        threshold=0.0,
        top_k=3,
        n_bootstrap=50,
        n_permutations=100,
        p_method="normal",
        unit_names=[f"L0N{u}" for u in range(acts.shape[1])],
    )
    best = ranking.top[0]
    assert (best.unit, best.name) == (PLANTED_UNIT, f"L0N{PLANTED_UNIT}")
    assert best.value is not None and best.value >= 0.99
    assert best.significant
    runner_up = ranking.top[1].value
    assert runner_up is None or runner_up < 0.5  # random neurons are nowhere near


def test_rank_labels_names_the_planted_set_first(planted: dict[str, Any]) -> None:
    table, texts, token_ids = planted["table"], planted["texts"], planted["token_ids"]
    token = np.asarray(table.token_id)
    name = "token in {" + ", ".join(repr(texts[t]) for t in token_ids) + "}"
    # a label library as an automatic explanation would build it: every frequent token, the generic boolean
    # columns, and token sets, among them the planted one, its subsets and a superset
    columns = {_token_column(texts[int(t)], int(t)): token == t for t in np.unique(token)}
    for col, info in table.column_info.items():
        if info.labeller == "generic" and info.kind == "bool":
            columns[col] = np.asarray(table.col(col), dtype=bool)
    columns[name] = np.isin(token, token_ids)
    columns["subset"] = np.isin(token, token_ids[:2])
    other = next(int(t) for t in np.unique(token) if int(t) not in token_ids and (token == t).sum() >= 20)
    columns["superset"] = np.isin(token, [*token_ids, other])
    unit = planted["acts"][:, PLANTED_UNIT]
    ranked = rank_labels(unit, columns)  # defaults: IoU of "act > the unit's 99th percentile"
    assert ranked[0].name == name
    assert ranked[0].value == pytest.approx(1.0)
    assert ranked[0].n_positive == int(columns[name].sum())
    # what comes next is made of the planted tokens (a subset, the superset, one token of the set)
    related = {"subset", "superset"} | {_token_column(texts[t], t) for t in token_ids}
    assert [r.name for r in ranked[1:4] if r.name not in related] == []
