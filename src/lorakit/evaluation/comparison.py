"""Run a comparison: every candidate answers the same prompts with the same decoding, then every metric is
scored per example with intervals and paired tests. The evaluate stage and `python -m lorakit.compare` both
call `compare`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lorakit.core.answers import task_kind
from lorakit.core.messages import last_reply, through_last_reply
from lorakit.core.runs import read_jsonl
from lorakit.data.encoding import test_rows
from lorakit.data.splits import held_out_examples
from lorakit.data.template import prompt_and_reference, template_sha256
from lorakit.evaluation import grading, judge, recorded, scoring
from lorakit.evaluation.cache import GenerationCache, candidate_key
from lorakit.evaluation.candidates import Candidate, CandidateError, check_base
from lorakit.evaluation.metrics import METRICS, check_names, default_metrics
from lorakit.inference import engines
from lorakit.inference.api_engine import ApiEngine
from lorakit.inference.engine import default_max_new_tokens
from lorakit.models.loading import BaseModel
from lorakit.openai.api import endpoint
from lorakit.openai.records import prompt_messages

log = logging.getLogger(__name__)


def test_set(cfg: DictConfig, tokenizer, prepared: Path | None, task_fields: set[str] | None = None) -> list[dict]:
    """The test rows: a prepared split (data/test.jsonl of a run) when it exists, else the held-out set the data
    config defines (data.test_file, or the split of data.train_file; tasks with task_fields, as a method that trains
    on tasks reads them), first eval.max_examples of them."""
    if prepared is not None and prepared.is_file():
        rows = read_jsonl(prepared)
    else:
        held_out = held_out_examples(cfg.data, cfg.seed, tokenizer, task_fields)
        examples, findings = test_rows(held_out, tokenizer, cfg.data.max_length)
        for finding in findings:
            log.warning("not evaluated: %s", finding)
        rows = [{"file": ex.file, "line": ex.line, "messages": ex.messages, "tools": ex.tools,
                 **({"item": ex.item} if ex.item is not None else {})} for ex in examples]
    return rows[: cfg.eval.max_examples] if cfg.eval.max_examples else rows


def pick_shots(train_rows: list[dict], k: int, seed: int) -> list[list[dict]]:
    """K training conversations (seeded choice), each up to its last assistant turn, without system messages.
    check() has made sure there are at least K."""
    chosen = random.Random(seed).sample(range(len(train_rows)), k)
    shots = []
    for i in chosen:
        shots.append([{"role": m["role"], "content": m["content"]} for m in through_last_reply(train_rows[i]["messages"])
                      if m["role"] != "system"])
    return shots


def with_shots(messages: list[dict], shots: list[list[dict]]) -> list[dict]:
    """The conversation with the shots as earlier turns, after its system messages."""
    system = [m for m in messages if m["role"] == "system"]
    return system + [m for shot in shots for m in shot] + [m for m in messages if m["role"] != "system"]


def check(candidates: list[Candidate], rows: list[dict], *, base: BaseModel, metrics: list[str] | None,
          train_rows: list[dict] | None, judge_cfg: DictConfig | None = None,
          graders: dict[str, dict] | None = None) -> None:
    """Every problem found before any model is loaded or any answer generated.

    Raises:
        CandidateError: one message listing each problem with its fix.
    """
    problems = []
    if not candidates:
        problems.append("no candidates: give at least one, e.g. candidates=[base,outputs/my-run]")
    names = [c.name for c in candidates]
    problems += [f"candidate {n!r} is given twice" for n in sorted({n for n in names if names.count(n) > 1})]
    if not rows:
        problems.append("the test set is empty: set data.test_file=... (chat JSONL) or compare runs that have a test split")
    problems += check_names(metrics or []) + grading.check_can_run(graders or {})
    if rows and not (metrics or graders) and all(last_reply(r["messages"]) is None for r in rows):
        problems.append("the test rows end in a user turn (tasks, no reference answer) and no grader is set to "
                        "score the answers; set eval.graders=graders.yaml")
    adapters = [c for c in candidates if c.kind == "adapter"]
    if adapters:
        for c in adapters:
            try:
                check_base(c, base.name, base.config)
            except CandidateError as err:
                problems.append(str(err))
    for c in candidates:
        if c.kind == "recorded" and rows:
            try:
                recorded.answers(Path(c.model), rows)
            except CandidateError as err:
                problems.append(str(err))
        if c.kind == "fewshot" and len(train_rows or []) < c.shots:
            problems.append(f"candidate {c.name!r} needs {c.shots} training examples; {len(train_rows or [])} are "
                            "available; lower K or set data.train_file")
    if judge_cfg is not None and judge_cfg.model:
        if judge_cfg.mode not in {"pointwise", "pairwise", "both"}:
            problems.append(f"eval.judge.mode={judge_cfg.mode!r}: use pointwise, pairwise or both")
        if judge_cfg.mode != "pointwise" and len(candidates) < 2:
            problems.append("a pairwise judge needs at least two candidates; add one or set eval.judge.mode=pointwise")
    if problems:
        raise CandidateError("cannot compare:\n- " + "\n- ".join(problems))


def _generate(engine: engines.LocalEngine, plans: list, cache: GenerationCache, max_new: int, *, mixed: bool,
              keep_base: bool) -> tuple[dict[str, list[str]], dict[str, float], dict[str, int]]:
    """Every candidate's missing answers: (answers, seconds, answers generated) per candidate.

    mixed: all candidates in shared batches, each row through its own adapter (GPUs: decoding is memory-bound).
    Otherwise one candidate after another, the base and few-shot ones first, each adapter merged while it
    generates (CPUs: merged LoRA costs no extra compute); the last one for good unless keep_base.
    """
    for c, *_, missing in plans:
        if missing and c.kind == "adapter" and c.name not in engine.adapters:
            engine.add_adapter(c.name, c.adapter)
    outputs, timings, generated = {}, {}, {}
    if mixed:
        start = time.perf_counter()
        todo = [p for p in plans if p[4]]
        answers = engine.generate_mixed([(c.name if c.kind == "adapter" else None, [prompts[i] for i in missing])
                                         for c, prompts, _, _, missing in todo], max_new_tokens=max_new) if todo else []
        new = {p[0].name: a for p, a in zip(todo, answers, strict=True)}
        if todo:
            timings["all candidates"] = round(time.perf_counter() - start, 2)
        for c, prompts, key, stored, missing in plans:
            outputs[c.name] = cache.complete(key, prompts, stored, dict(zip(missing, new.get(c.name, []), strict=True)))
            generated[c.name] = len(missing)
        return outputs, timings, generated
    order = sorted(plans, key=lambda p: p[0].kind == "adapter")
    last = None if keep_base else next((p[0].name for p in reversed(order) if p[0].kind == "adapter" and p[4]), None)
    for c, prompts, key, stored, missing in order:
        start = time.perf_counter()
        new = engine.generate([prompts[i] for i in missing], adapter=c.name if c.kind == "adapter" else None,
                              max_new_tokens=max_new, desc=c.name,
                              merge="last" if c.name == last else "restore") if missing else []
        outputs[c.name] = cache.complete(key, prompts, stored, dict(zip(missing, new, strict=True)))
        timings[c.name], generated[c.name] = round(time.perf_counter() - start, 2), len(missing)
    return outputs, timings, generated


def _generate_api(api, plans: list, cache: GenerationCache, max_new: int, seed: int) -> tuple[dict, dict, dict]:
    """API candidates' missing answers, concurrent requests per candidate: (answers, seconds, generated)."""
    outputs, timings, generated = {}, {}, {}
    for c, prompts, key, stored, missing in plans:
        start = time.perf_counter()
        asked = [json.loads(prompts[i]) for i in missing]
        new = api.chat(c.model, [a["messages"] for a in asked], tools=[a["tools"] for a in asked], max_tokens=max_new,
                       seed=seed, desc=c.name) if missing else []
        outputs[c.name] = cache.complete(key, prompts, stored, dict(zip(missing, new, strict=True)))
        timings[c.name], generated[c.name] = round(time.perf_counter() - start, 2), len(missing)
    return outputs, timings, generated


def _plans(cfg: DictConfig, candidates: list[Candidate], rows: list[dict], split: list[tuple[str, str]], *,
           engine: engines.LocalEngine, api, cache: GenerationCache, max_new: int, train_rows: list[dict] | None) -> list[tuple]:
    """Per candidate: (candidate, its prompts, its cache key, the answers stored, the indices still missing)."""
    base = engine.base
    template = template_sha256(base.tokenizer)
    plans = []
    for c in candidates:
        if c.kind == "recorded":  # answered already: read, never generated
            continue
        if c.kind == "api":
            prompts = [json.dumps({"messages": prompt_messages(r["messages"]), "tools": r.get("tools")},
                                  ensure_ascii=False) for r in rows]
            key = api.key(c.model, max_new, cfg.seed)
            plans.append((c, prompts, key, *cache.lookup(key, prompts)))
            continue
        shots = pick_shots(train_rows or [], c.shots, cfg.seed) if c.kind == "fewshot" else None
        prompts = ([prompt_and_reference(base.tokenizer, with_shots(r["messages"], shots), r.get("tools"))[0]
                    for r in rows] if shots else [p for p, _ in split])
        key = candidate_key(model_path=base.path, quant=engine.quant, adapter=c.adapter, shots=shots, template=template,
                            max_new_tokens=max_new, eot_ids=base.eot_ids, engine=engine.name)
        plans.append((c, prompts, key, *cache.lookup(key, prompts)))
    return plans


def _answers(cfg: DictConfig, plans: list, engine, api, cache: GenerationCache, max_new: int, *, cuda: bool,
             keep_base: bool) -> tuple[dict, dict, dict]:
    """The answers of the API candidates, then of the local ones: (answers, seconds, generated) per candidate."""
    mixed = cuda if cfg.eval.get("mixed_batches") is None else bool(cfg.eval.mixed_batches)
    mixed = mixed or engine.name == "vllm"  # vLLM batches every candidate's requests together
    outputs, timings, generated = _generate_api(api, [p for p in plans if p[0].kind == "api"], cache, max_new, cfg.seed)
    local = _generate(engine, [p for p in plans if p[0].kind != "api"], cache, max_new, mixed=mixed,
                      keep_base=keep_base)
    for mine, theirs in zip((outputs, timings, generated), local, strict=True):
        mine.update(theirs)
    return outputs, timings, generated


def _api_engine(cfg: DictConfig, candidates: list[Candidate], judge_model) -> ApiEngine | None:
    """The API client when a candidate or the judge answers through one; a missing key stops here, before
    anything is generated."""
    if not (any(c.kind == "api" for c in candidates) or (judge_model is not None and judge_model.api_model)):
        return None
    return engines.api(endpoint(cfg))


def _judged(cfg: DictConfig, judge_model, engine: engines.LocalEngine, api, cache: GenerationCache, rows: list[dict],
            references: list[str], outputs: dict[str, list[str]], reference: str, clusters, *, judge_is_base: bool,
            cuda: bool) -> dict:
    """The judge's verdicts: through the API, the comparison's own model (the judge is its base), or the judge
    model loaded in the comparison's place."""
    runner = api if judge_model.api_model else engine
    if not judge_is_base:
        engine.release()
        if not judge_model.api_model:
            runner = engines.make("lorakit", judge_model.base, quant=engine.quant, batch_size=engine.batch_size,
                                  cuda=cuda)
    return judge.run(cfg, judge_model, runner, cache, rows, references, outputs, reference, clusters,
                     task_kind(references))


def _engine(cfg: DictConfig, base: BaseModel, cuda: bool):
    """The inference engine eval.engine names (lorakit's own or vLLM's), over the comparison's base."""
    settings = OmegaConf.to_container(cfg.eval.vllm, resolve=True) if cfg.eval.get("vllm") else None
    return engines.make(cfg.eval.get("engine") or "auto", base, quant=OmegaConf.to_container(cfg.quant, resolve=True),
                      batch_size=cfg.eval.batch_size, cuda=cuda, settings=settings)


def compare(cfg: DictConfig, candidates: list[Candidate], rows: list[dict], *, base: BaseModel, cuda: bool,
            train_rows: list[dict] | None = None, cache_dir: Path | None = None,
            graders: dict[str, dict] | None = None) -> dict:
    """Generate (or take from the cache) every candidate's answers and score them (`graders` before eval.graders).

    Returns:
        compare.json's content plus "outputs" (answers per candidate), "references", "per_example" and "timings".
    """
    metrics = list(cfg.eval.metrics) if cfg.eval.get("metrics") else None
    jcfg = cfg.eval.get("judge")
    graders = {**(graders or {}), **(grading.load(cfg.eval.graders) if cfg.eval.get("graders") else {})}
    check(candidates, rows, base=base, metrics=metrics, train_rows=train_rows, judge_cfg=jcfg, graders=graders)
    judge_model = judge.load(str(jcfg.model), base.attn_implementation) if jcfg and jcfg.model else None
    judge_is_base = judge_model is not None and judge_model.base is not None and judge_model.base.path == base.path
    api = _api_engine(cfg, candidates, judge_model)
    split = [prompt_and_reference(base.tokenizer, r["messages"], r.get("tools")) for r in rows]
    references = [ref for _, ref in split]
    max_new = cfg.eval.max_new_tokens or default_max_new_tokens(base.tokenizer, references)
    metrics = metrics or (default_metrics(references) if any(references) else [])  # tasks have no reference
    engine = _engine(cfg, base, cuda)
    cache = GenerationCache(cache_dir)
    log.info("comparing %s on %d test examples (max %d new tokens, batch %d; metrics %s)", ", ".join(
        c.name for c in candidates), len(rows), max_new, cfg.eval.batch_size, ", ".join([*metrics, *graders]))
    plans = _plans(cfg, candidates, rows, split, engine=engine, api=api, cache=cache, max_new=max_new,
                   train_rows=train_rows)
    outputs, timings, generated = _answers(cfg, plans, engine, api, cache, max_new, cuda=cuda, keep_base=judge_is_base)
    outputs = {c.name: recorded.answers(Path(c.model), rows) if c.kind == "recorded" else outputs[c.name]
               for c in candidates}  # the user's order
    log.info("generated %s answers (the rest from the cache) in %s; base model loads: %d",
             ", ".join(f"{n}: {k}" for n, k in generated.items()),
             ", ".join(f"{n} {t:.1f} s" for n, t in timings.items()), engine.loads)
    loads = engine.loads
    clusters = [r["conversation"] for r in rows] if all("conversation" in r for r in rows) else None
    reference = cfg.get("reference") or candidates[0].name
    table, graded = dict(METRICS), {}
    if graders:
        ask = grading.asker(cfg, api, cache, cuda, quant=engine.quant, batch_size=engine.batch_size,
                            attn_implementation=base.attn_implementation,
                            before_load=engine.release) if grading.needs_model(graders) else None
        extra, graded = grading.metrics(graders, grading.items_of(rows, references), ask)
        table.update(extra)
        metrics = [*metrics, *graders]
    scored = scoring.score(metrics, outputs, references, clusters, reference=reference, seed=cfg.seed, table=table)
    verdicts = None
    if judge_model is not None:
        start = time.perf_counter()
        verdicts = _judged(cfg, judge_model, engine, api, cache, rows, references, outputs, reference, clusters,
                           judge_is_base=judge_is_base, cuda=cuda)
        timings["judge"] = round(time.perf_counter() - start, 2)
    return {"candidates": scored["candidates"], "tests": scored["tests"], "judge": verdicts, "n_examples": len(rows),
            "non_inferiority": scoring.non_inferiority(scored["tests"] + judge.win_rate_tests(verdicts),
                                                       cfg.eval.get("margin")),
            "graders": grading.failures(graders, graded, outputs, rows) if graders else None,
            "metrics": metrics, "reference": reference, "max_new_tokens": max_new,
            "generated": generated, "base_model_loads": loads,
            "outputs": outputs, "references": references, "per_example": scored["per_example"], "timings": timings,
            "train_logs": {c.name: str(c.run.train_log) for c in candidates if c.run and c.run.train_log.is_file()}}
