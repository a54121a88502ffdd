"""LLM-as-judge, opt-in (`eval.judge.model=...`): a judge model grades the candidates' answers.

- Pointwise: each answer gets an integer score 1..scale against a rubric (the default depends on the task kind:
  JSON, label or free text). The reply is parsed strictly: the score alone ("4", "Score: 4", "4/5"); any other
  reply is counted as unparseable and never given a default score.
- Pairwise: every candidate against the reference candidate, each example judged in both orders (reference
  first, then second). A verdict that flips with the order is a tie; the position-consistency rate (same verdict
  in both orders, among examples where both replies parsed) is reported with win / tie / loss counts, the win
  rate (a tie counts half) with its 95% interval and a sign test. Identical answers are ties without a judge call.

The judge is any chat model lorakit can load (a conf/model name, a local folder or a hub id in the local cache) or
a model behind an OpenAI-compatible API (`openai:<model id>`, endpoint from eval.openai). Its replies go through
the same generation cache as the candidates' answers.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from lorakit.core.messages import prompt_of
from lorakit.data.template import template_sha256
from lorakit.evaluation import stats
from lorakit.evaluation.cache import candidate_key
from lorakit.evaluation.candidates import API, CandidateError
from lorakit.evaluation.scoring import per_example_test
from lorakit.models.loading import BaseModel, ModelNotFoundError, load_base, model_spec

log = logging.getLogger(__name__)

SYSTEM = "You are a strict, impartial grader. You follow the output format exactly and write nothing else."
RUBRICS = {
    "json": "The answer must be a JSON object with the same fields and values as the reference answer; key order "
            "and spacing do not matter. Highest score: every field and value matches. Lowest: not JSON, or no "
            "field right.",
    "label": "The answer must be the same label as the reference answer. Highest score: the same label. Lowest: "
             "another label, or not a label.",
    "text": "Judge correctness first, then completeness and helpfulness, using the reference answer as a guide to "
            "what is correct. Highest score: correct and complete. Lowest: wrong, off-topic or empty.",
}
_SCORE = re.compile(r"\s*(?:\**score\**\s*[:=]?\s*\**\s*)?(\d+)\s*(?:/\s*\d+)?\s*\.?\s*", re.IGNORECASE)
_VERDICT = re.compile(r"\s*(?:(?:verdict|answer|better)\s*[:=]?\s*)?[\[(*\"']*(A|B|tie)[\])*\"'.]*\s*", re.IGNORECASE)


@dataclass
class JudgeModel:
    spec: str                      # as configured
    base: BaseModel | None         # the local judge model and its tokenizer (None: an API judge)
    api_model: str | None = None   # openai:<model id>: the model at the endpoint


def load(spec: str, attn_implementation: str = "sdpa") -> JudgeModel:
    """Find the judge model and load its tokenizer: a conf/model name, a local folder or a cached hub id.

    Raises:
        CandidateError / ModelNotFoundError: naming the judge and the fix, before anything is generated.
    """
    if spec.startswith(API):
        return JudgeModel(spec, None, api_model=spec.removeprefix(API))
    base = load_base(model_config(spec, attn_implementation))
    base.tokenizer.padding_side = "left"
    return JudgeModel(spec, base)


def model_config(spec: str, attn_implementation: str = "sdpa") -> DictConfig:
    """The judge's model config, without loading anything (the configuration check calls it before training).

    Raises:
        CandidateError: spec is no folder, no conf/model name and no hub id.
    """
    try:
        return model_spec(spec, attn_implementation, setting="eval.judge.model")
    except ModelNotFoundError as err:
        raise CandidateError(str(err)) from None


def _conversation(messages: list[dict]) -> str:
    """The conversation up to the graded answer, as plain text."""
    return "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in prompt_of(messages))


def _reference(reference: str) -> str:
    """The reference answer's section of a judge prompt; none when the test example has no reference (prompts
    alone, as lorakit.migrate may compare on)."""
    return f"[Reference answer]\n{reference}\n\n" if reference.strip() else ""


def rubric_for(jcfg: DictConfig, kind: str) -> str:
    return jcfg.rubric or RUBRICS[kind]


def pointwise_messages(messages: list[dict], reference: str, answer: str, rubric: str, scale: int) -> list[dict]:
    user = (f"Grade the answer to the conversation below from 1 (worst) to {scale} (best).\n\nRubric: {rubric}\n\n"
            f"[Conversation]\n{_conversation(messages)}\n\n{_reference(reference)}[Answer to grade]\n{answer}\n\n"
            f"Reply with the score alone, as `Score: N` with N an integer from 1 to {scale}.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def pairwise_messages(messages: list[dict], reference: str, first: str, second: str, rubric: str) -> list[dict]:
    user = (f"Two answers to the conversation below. Which is better?\n\nRubric: {rubric}\n\n"
            f"[Conversation]\n{_conversation(messages)}\n\n{_reference(reference)}[Answer A]\n{first}\n\n"
            f"[Answer B]\n{second}\n\nReply with `A`, `B` or `tie` alone.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_score(reply: str, scale: int) -> int | None:
    """The integer score when the reply is the score alone and within 1..scale; None otherwise."""
    match = _SCORE.fullmatch(reply)
    return int(match.group(1)) if match and 1 <= int(match.group(1)) <= scale else None


def parse_verdict(reply: str) -> str | None:
    """"A", "B" or "tie" when the reply is the verdict alone; None otherwise."""
    match = _VERDICT.fullmatch(reply)
    return match.group(1).upper().replace("TIE", "tie") if match else None


def outcome(first_order: str | None, second_order: str | None) -> tuple[str, bool | None]:
    """(b's outcome, consistent) from the verdicts with a shown first (A=a, B=b) and then b first (A=b, B=a).

    b's outcome is "win", "loss", "tie" or "unparseable"; a verdict that flips with the order is a tie.
    consistent is None when either reply did not parse.
    """
    if first_order is None or second_order is None:
        return "unparseable", None
    one = {"A": "loss", "B": "win", "tie": "tie"}[first_order]
    two = {"A": "win", "B": "loss", "tie": "tie"}[second_order]
    return (one, True) if one == two else ("tie", False)


def pointwise_summary(scores: list[int | None], clusters, scale: int) -> dict:
    kept = [i for i, s in enumerate(scores) if s is not None]
    value, low, high = stats.mean_ci([scores[i] for i in kept], [clusters[i] for i in kept] if clusters else None)
    return {"score": {"value": value, "ci_low": max(low, 1.0) if kept else low, "ci_high": min(high, float(scale))},
            "n_scored": len(kept),
            "unparseable": len(scores) - len(kept),
            "distribution": {str(k): sum(s == k for s in scores) for k in range(1, scale + 1)}}


def pointwise_test(a: list[int | None], b: list[int | None], clusters) -> dict:
    """b - a on the examples where both scores parsed: difference, interval, Wilcoxon (or a cluster
    permutation test when conversations hold several examples)."""
    both = [i for i in range(len(a)) if a[i] is not None and b[i] is not None]
    if both:
        difference, low, high, test, statistic, p = per_example_test(
            [a[i] for i in both], [b[i] for i in both], [clusters[i] for i in both] if clusters else None, binary=False)
    else:
        difference, low, high, test, statistic, p = 0.0, 0.0, 0.0, "none (no example scored for both)", 0.0, 1.0
    return {"difference": difference, "ci_low": low, "ci_high": high, "test": test, "statistic": float(statistic),
            "p_value": float(p), "n": len(both)}


def pairwise_summary(outcomes: list[tuple[str, bool | None]], identical: list[bool], clusters) -> dict:
    from scipy.stats import binomtest

    counts = {k: sum(o == k for o, _ in outcomes) for k in ("win", "tie", "loss", "unparseable")}
    judged = [c for (_, c), same in zip(outcomes, identical, strict=True) if c is not None and not same]
    parsed = [i for i, (o, _) in enumerate(outcomes) if o != "unparseable"]
    points = [{"win": 1.0, "tie": 0.5, "loss": 0.0}[outcomes[i][0]] for i in parsed]
    value, low, high = stats.mean_ci(points, [clusters[i] for i in parsed] if clusters else None)
    decided = counts["win"] + counts["loss"]
    p = binomtest(counts["win"], decided, 0.5).pvalue if decided else 1.0
    return {**counts, "identical": sum(identical),
            "position_consistency": sum(judged) / len(judged) if judged else None,
            "win_rate": {"value": value, "ci_low": max(low, 0.0), "ci_high": min(high, 1.0)},
            "test": "sign test (exact binomial, ties dropped)", "p_value": float(p)}


def win_rate_tests(judged: dict | None) -> list[dict]:
    """The pairwise judge's results as paired tests for non-inferiority (scoring.non_inferiority): b's win rate
    against a (a tie counts half) minus 0.5, parity, with its interval."""
    return [{"metric": "judge_win_rate", "a": p["a"], "b": p["b"], "difference": p["win_rate"]["value"] - 0.5,
             "ci_low": p["win_rate"]["ci_low"] - 0.5, "ci_high": p["win_rate"]["ci_high"] - 0.5}
            for p in (judged or {}).get("pairwise", [])]


def asker(judge: JudgeModel, engine, cache, *, max_new_tokens: int, seed: int, quant: dict | None):
    """ask(conversations, desc) -> the model's greedy replies, through the generation cache (the judge's, and
    the model graders' of lorakit.evaluation.grading)."""
    if judge.api_model:
        key = engine.key(judge.api_model, max_new_tokens, seed)
    else:
        key = candidate_key(model_path=judge.base.path, quant=quant, adapter=None, shots=None,
                            template=template_sha256(judge.base.tokenizer), max_new_tokens=max_new_tokens,
                            eot_ids=judge.base.eot_ids)

    def ask(conversations: list[list[dict]], desc: str) -> list[str]:
        if judge.api_model:
            prompts = [json.dumps(c, ensure_ascii=False) for c in conversations]
        else:
            prompts = [judge.base.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                       for c in conversations]
        stored, missing = cache.lookup(key, prompts)
        if not missing:
            new = []
        elif judge.api_model:
            new = engine.chat(judge.api_model, [conversations[i] for i in missing], max_tokens=max_new_tokens,
                              seed=seed, desc=desc)
        else:
            new = engine.generate([prompts[i] for i in missing], adapter=None, max_new_tokens=max_new_tokens,
                                  desc=desc)
        return cache.complete(key, prompts, stored, dict(zip(missing, new, strict=True)))

    return ask


def _pointwise(ask, result: dict, rows: list[dict], references: list[str], outputs: dict[str, list[str]],
               reference: str, clusters) -> None:
    """Every answer scored 1..scale: the summaries, the tests against the reference and the scores."""
    rubric, scale = result["rubric"], result["scale"]
    scores = {}
    for name, answers in outputs.items():
        replies = ask([pointwise_messages(r["messages"], ref, ans, rubric, scale)
                       for r, ref, ans in zip(rows, references, answers, strict=True)], f"judge {name}")
        scores[name] = [parse_score(reply, scale) for reply in replies]
        result["calls"] += len(replies)
    result["pointwise"] = {name: pointwise_summary(s, clusters, scale) for name, s in scores.items()}
    result["pointwise_tests"] = [{"a": reference, "b": name, **pointwise_test(scores[reference], s, clusters)}
                                 for name, s in scores.items() if name != reference]
    result["pointwise_scores"] = scores


def _pairwise(ask, result: dict, rows: list[dict], references: list[str], outputs: dict[str, list[str]],
              reference: str, clusters) -> None:
    """Every candidate against the reference, each example in both orders (identical answers tie unjudged)."""
    result["pairwise"] = []
    a = outputs[reference]
    for name, b in outputs.items():
        if name == reference:
            continue
        identical = [x == y for x, y in zip(a, b, strict=True)]
        todo = [i for i, same in enumerate(identical) if not same]
        asked = [pairwise_messages(rows[i]["messages"], references[i], a[i], b[i], result["rubric"]) for i in todo]
        asked += [pairwise_messages(rows[i]["messages"], references[i], b[i], a[i], result["rubric"]) for i in todo]
        replies = ask(asked, f"judge {reference} vs {name}")
        result["calls"] += len(replies)
        verdicts = dict(zip(todo, zip(replies[: len(todo)], replies[len(todo):], strict=True), strict=True))
        outcomes = [("tie", True) if same else outcome(parse_verdict(verdicts[i][0]), parse_verdict(verdicts[i][1]))
                    for i, same in enumerate(identical)]
        result["pairwise"].append({"a": reference, "b": name, **pairwise_summary(outcomes, identical, clusters),
                                   "outcomes": [o for o, _ in outcomes]})


def run(cfg: DictConfig, judge: JudgeModel, engine, cache, rows: list[dict], references: list[str],
        outputs: dict[str, list[str]], reference: str, clusters, kind: str) -> dict:
    """Judge every candidate's answers; returns compare.json's "judge" part.

    engine: an inference Engine holding the judge model (the comparison's own when the judge is its base), or
    an ApiEngine (lorakit.inference.api_engine) for an API judge.
    """
    jcfg = cfg.eval.judge
    ask = asker(judge, engine, cache, max_new_tokens=jcfg.max_new_tokens, seed=cfg.seed,
                quant=OmegaConf.to_container(cfg.quant, resolve=True))
    result: dict = {"model": judge.spec, "mode": jcfg.mode, "rubric": rubric_for(jcfg, kind),
                    "scale": int(jcfg.scale), "calls": 0}
    if jcfg.mode in {"pointwise", "both"}:
        _pointwise(ask, result, rows, references, outputs, reference, clusters)
    if jcfg.mode in {"pairwise", "both"}:
        _pairwise(ask, result, rows, references, outputs, reference, clusters)
    log.info("judge %s: %d replies", judge.spec, result["calls"])
    return result
