"""Labellers: one module per family, each declaring its columns and their exact definitions in its docstring. Families:
``generic`` (base64, URLs, numbers, words split over tokens, previous tokens, repeats), ``regex`` (named patterns),
``topics`` (English topic lexicons), ``code`` (Python structure from `tokenize`, JavaScript from a small lexer),
``latex`` (math, environments, commands), ``spacy`` (POS, tags, dependencies, entities, lemmas, morphology, merged
with gold), ``gold`` (gold spans only). Alignment of character spans to model tokens is in
`featuretests.labels.align`. Importing this package loads no spaCy.
"""

from __future__ import annotations

from featuretests.labels.base import Categorical, ColumnSpec, LabelInput, Labeller, Problem
from featuretests.labels.code import CodeLabeller
from featuretests.labels.generic import GenericLabeller
from featuretests.labels.gold import GoldLabeller
from featuretests.labels.latex import LatexLabeller
from featuretests.labels.regex import RegexLabeller
from featuretests.labels.spacy_labels import SpacyLabeller
from featuretests.labels.topics import TopicLabeller

__all__ = [
    "FAMILIES",
    "Categorical",
    "CodeLabeller",
    "ColumnSpec",
    "GenericLabeller",
    "GoldLabeller",
    "LabelInput",
    "Labeller",
    "LatexLabeller",
    "Problem",
    "RegexLabeller",
    "SpacyLabeller",
    "TopicLabeller",
    "default_labellers",
]

FAMILIES: dict[str, str] = {
    "generic": "GenericLabeller(): in_base64, in_url, is_number, word_start, prev_1.., seen_before, ...",
    "code": "CodeLabeller(): indent_level, paren_depth, in_string, in_docstring, is_keyword, line_start, ...",
    "latex": "LatexLabeller(): in_math, latex_env, latex_command, in_command_arg",
    "spacy": "SpacyLabeller(): pos, tag, dep, lemma, morph, ent_type, ent_iob, sense, is_stop, sent_start, ...",
    "gold": "GoldLabeller(keys=...): gold-only columns",
    "regex": "RegexLabeller(column, pattern, mode=...): your own boolean columns",
    "topics": "TopicLabeller(topics=..., window=32): topic, topic_word, topic_context (English lexicons)",
}


def default_labellers(*, spacy_parser: bool = True, spacy_ner: bool = True) -> list[Labeller]:
    """Generic, code, LaTeX and spaCy (with gold merged) labellers: every standard column."""
    return [
        GenericLabeller(),
        CodeLabeller(),
        LatexLabeller(),
        TopicLabeller(),
        SpacyLabeller(parser=spacy_parser, ner=spacy_ner),
    ]
