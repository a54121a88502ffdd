"""The graders that need no model: `string_check` and `text_similarity`, one score per example in [0, 1].

string_check (1 or 0): `eq` the rendered input equals the reference, `ne` it differs, `like` it contains the
reference, `ilike` it contains it ignoring case (OpenAI's definitions; no whitespace is stripped).

text_similarity, by `evaluation_metric`:
  fuzzy_match       rapidfuzz's normalized Indel similarity (`fuzz.ratio` / 100)
  bleu              sentence BLEU (sacrebleu, 13a tokenization, exponential smoothing) / 100
  gleu              Google BLEU (nltk's sentence_gleu, 1- to 4-grams)
  meteor            nltk's METEOR with exact and Porter-stem matches (WordNet synonyms need a corpus download,
                    so none are matched here: a score can be lower than OpenAI's on paraphrases)
  rouge_1..rouge_5  ROUGE-N F1 (rouge-score), rouge_l ROUGE-L F1, on words of any script
  cosine            needs an embedding model (OpenAI's is text-embedding-3-large): refused when validated
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache

STRING_OPERATIONS = ("eq", "ne", "like", "ilike")
SIMILARITY_METRICS = ("fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5",
                      "rouge_l", "cosine")
UNAVAILABLE = {"cosine": "cosine needs an embedding model (OpenAI uses text-embedding-3-large) and lorakit has none "
                         "offline; use fuzzy_match, bleu, meteor or rouge_l"}


def string_check(operation: str, inputs: Sequence[str], references: Sequence[str]) -> list[float]:
    checks = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "like": lambda a, b: b in a,
              "ilike": lambda a, b: b.lower() in a.lower()}
    check = checks[operation]
    return [float(check(a, b)) for a, b in zip(inputs, references, strict=True)]


def words(text: str) -> list[str]:
    """Lower-cased letter/digit runs in any script (rouge-score's own tokenizer drops every non-ASCII character)."""
    return re.findall(r"[^\W_]+", text.lower())


def _fuzzy(inputs, references) -> list[float]:
    from rapidfuzz import fuzz

    return [fuzz.ratio(a, b) / 100.0 for a, b in zip(inputs, references, strict=True)]


def _bleu(inputs, references) -> list[float]:
    from sacrebleu.metrics import BLEU

    metric = BLEU(effective_order=True)
    return [metric.sentence_score(a, [b]).score / 100.0 for a, b in zip(inputs, references, strict=True)]


def _word_pairs(inputs, references) -> list[tuple[str, str, list[str], list[str]]]:
    """(input, reference, their words) per example, each text split once."""
    return [(a, b, words(a), words(b)) for a, b in zip(inputs, references, strict=True)]


def _gleu(inputs, references) -> list[float]:
    from nltk.translate.gleu_score import sentence_gleu

    return [sentence_gleu([wb], wa) if wa and wb else float(a == b)
            for a, b, wa, wb in _word_pairs(inputs, references)]


class _NoSynonyms:
    """Stands in for WordNet in nltk's METEOR: no synonym matches (the corpus cannot be downloaded here)."""

    @staticmethod
    def synsets(*_args, **_kwargs) -> list:
        return []


def _meteor(inputs, references) -> list[float]:
    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import single_meteor_score

    stemmer = PorterStemmer()
    return [single_meteor_score(wb, wa, stemmer=stemmer, wordnet=_NoSynonyms()) if wa and wb else float(a == b)
            for a, b, wa, wb in _word_pairs(inputs, references)]


@cache
def _rouge_scorer(kind: str):
    from rouge_score import rouge_scorer

    class Words:
        def tokenize(self, text: str) -> list[str]:
            return words(text)

    return rouge_scorer.RougeScorer([kind], tokenizer=Words())  # one scorer per kind, reused


def _rouge(kind: str) -> Callable[[Sequence[str], Sequence[str]], list[float]]:
    def scores(inputs, references) -> list[float]:
        scorer = _rouge_scorer(kind)
        return [scorer.score(b, a)[kind].fmeasure for a, b in zip(inputs, references, strict=True)]

    return scores


SIMILARITY: dict[str, Callable[[Sequence[str], Sequence[str]], list[float]]] = {
    "fuzzy_match": _fuzzy, "bleu": _bleu, "gleu": _gleu, "meteor": _meteor,
    **{f"rouge_{n}": _rouge(f"rouge{n}") for n in range(1, 6)}, "rouge_l": _rouge("rougeL"),
}


def text_similarity(metric: str, inputs: Sequence[str], references: Sequence[str]) -> list[float]:
    return SIMILARITY[metric](inputs, references)
