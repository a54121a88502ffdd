"""Reinforcement fine-tuning (TRL GRPOTrainer + PEFT LoRA) with a grader's score as the reward, on tasks; method.*
are trl.GRPOConfig fields plus `grader` (conf/method/reinforcement.yaml). Its evaluation is the same grader on the
held-out tasks; OpenAI's method object carries the grader, and its batch_size counts tasks per step (each answered
num_generations times), compute_multiplier scales the generations, eval_samples sets those of validation."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

from omegaconf import DictConfig, OmegaConf
from pydantic import Field

from lorakit.core.fields import bad_number, config_fields, unknown_fields
from lorakit.core.paths import CONF_DIR, quoted
from lorakit.methods.base import Auto, Hyperparameters, Method, register

log = logging.getLogger(__name__)
GENERATIONS = int(OmegaConf.load(CONF_DIR / "method" / "reinforcement.yaml").num_generations)  # its one home


class ReinforcementHyperparameters(Hyperparameters):
    batch_size: Auto | Annotated[int, Field(ge=1, le=256)] | None = "auto"  # tasks per step, each answered n times
    compute_multiplier: Auto | Annotated[float, Field(gt=0, le=16)] | None = "auto"
    eval_interval: Auto | Annotated[int, Field(ge=1)] | None = "auto"
    eval_samples: Auto | Annotated[int, Field(ge=1, le=64)] | None = "auto"
    reasoning_effort: Literal["default", "low", "medium", "high"] | None = "default"


def reward(cfg: DictConfig, base, cuda: bool):
    """The reward: the method's grader scoring each completion, failures scored 0 and logged (the first of each
    kind, and every 100th)."""
    from lorakit.evaluation import grading
    from lorakit.evaluation.cache import GenerationCache
    from lorakit.evaluation.graders.run import grade

    name, grader = grading.method_grader(cfg.method)
    ask = grading.asker(cfg, None, GenerationCache(None), cuda, quant={}, batch_size=cfg.eval.batch_size,
                        attn_implementation=base.attn_implementation) if grading.needs_model({name: grader}) else None
    failed: Counter = Counter()

    def score(items: list[dict], answers: list[str]) -> list[float]:
        grades = grade(grader, items, answers, ask=ask)
        for g in grades:
            if g.error:
                failed[g.flag] += 1
                if failed[g.flag] == 1 or failed[g.flag] % 100 == 0:
                    log.warning("grader %s: a completion not graded (scored 0; %d so far of this kind): %s", name,
                                failed[g.flag], g.error)
        return [g.score for g in grades]

    return score


def prepared_tasks(run_dir: Path, tokenizer) -> dict[str, list[dict]]:
    """The prepare stage's train and validation tasks, each with its prompt rendered exactly as inference does."""
    from lorakit.core.runs import RunFolder, read_jsonl
    from lorakit.data.template import prompt_and_reference

    folder = RunFolder(run_dir)
    return {name: [{"prompt": prompt_and_reference(tokenizer, r["messages"], r.get("tools"))[0], **r}
                   for r in read_jsonl(folder.split(name))] if folder.split(name).is_file() else []
            for name in ("train", "validation")}


class Reinforcement(Method):
    name = "reinforcement"
    data = "tasks"
    hyperparameters = ReinforcementHyperparameters
    openai_fields = ("grader",)
    columns = None

    def check(self, cfg: DictConfig) -> list[str]:
        """method.grader (one grader), the trl.GRPOConfig fields, and a batch that holds whole groups."""
        from trl import GRPOConfig

        from lorakit.evaluation import grading
        from lorakit.evaluation.graders.spec import GraderError

        method, train = cfg.method, cfg.get("train") or {}
        problems = unknown_fields("method", [k for k in method if k not in {"name", "grader"}],
                                  config_fields(GRPOConfig), "trl.GRPOConfig")
        try:
            problems += grading.check_can_run(dict([grading.method_grader(method)]))
        except GraderError as err:
            problems.append(str(err))
        generations = method.get("num_generations", GENERATIONS)
        problems += bad_number("method.num_generations", generations, 2, integer=True)
        problems += bad_number("method.max_completion_length", method.get("max_completion_length", 512), 1,
                               integer=True)
        problems += bad_number("method.beta", method.get("beta", 0.0), 0)
        problems += bad_number("method.learning_rate", method.get("learning_rate"), 0, above=True,
                               null="train.learning_rate x 0.2")
        batch = train.get("per_device_train_batch_size", 8) * (train.get("gradient_accumulation_steps", 1) or 1)
        if isinstance(generations, int) and generations >= 2 and isinstance(batch, int) and batch % generations:
            problems.append(f"method.num_generations={generations}: each step trains on whole groups of completions, "
                            "and train.per_device_train_batch_size x train.gradient_accumulation_steps = "
                            f"{batch} is not a multiple of it; set train.per_device_train_batch_size="
                            f"{generations * max(batch // generations, 1)} or method.num_generations to a divisor "
                            f"of {batch}")
        if cfg.get("data") and cfg.data.get("format", "auto") not in ("auto", "openai_chat"):
            problems.append(f"data.format={cfg.data.format}: method=reinforcement reads tasks in OpenAI's "
                            "reinforcement JSONL (messages ending in a user turn, plus the grader's fields); set "
                            "data.format=auto")
        return problems

    def task_fields(self, cfg: DictConfig) -> set[str] | None:
        from lorakit.evaluation import grading
        from lorakit.evaluation.graders import spec

        return spec.item_fields(grading.method_grader(cfg.method)[1])

    def encode(self, examples, tokenizer, eot_ids, data):
        from lorakit.data.encoding import encode_tasks

        return encode_tasks(examples, tokenizer, eot_ids, data)

    def build_trainer(self, cfg, run_dir, base, *, cuda, report_to):
        from lorakit.training.grpo import build_grpo_trainer

        tasks = prepared_tasks(run_dir, base.tokenizer)
        return build_grpo_trainer(cfg, run_dir, base, tasks["train"], reward(cfg, base, cuda),
                                  validation=tasks["validation"], cuda=cuda, report_to=report_to)

    def evaluation(self, cfg):
        """Its grader on the held-out tasks, answers as long as in training."""
        from lorakit.evaluation import grading

        if cfg.eval.max_new_tokens is None:
            cfg = OmegaConf.merge(cfg, {"eval": {"max_new_tokens": cfg.method.get("max_completion_length")}})
        return cfg, dict([grading.method_grader(cfg.method)])

    def openai_method(self, cfg: DictConfig) -> dict:
        from lorakit.evaluation import grading

        out = super().openai_method(cfg)
        out[self.name]["grader"] = grading.method_grader(cfg.method)[1]
        return out

    def job_overrides(self, job, hp, run_dir, base_model):
        """method.* and the batch; the grader written to the run folder (a model grader's served base id becomes the
        model the job loads)."""
        grader = json.loads(json.dumps(job["method"][self.name]["grader"]))  # a copy: the job keeps its own
        for part in list(grader["graders"].values()) if grader["type"] == "multi" else [grader]:
            if part["type"] in {"score_model", "label_model"}:
                part["model"] = base_model
        path = run_dir / "grader.json"
        path.write_text(json.dumps(grader, indent=2))
        out = [f"method.grader={quoted(path)}"]
        generations = GENERATIONS
        if hp.get("compute_multiplier", "auto") != "auto":
            generations = max(2, round(GENERATIONS * float(hp["compute_multiplier"])))
            out.append(f"method.num_generations={generations}")
        if hp["batch_size"] != "auto" or generations != GENERATIONS:
            tasks = 1 if hp["batch_size"] == "auto" else int(hp["batch_size"])
            out.append(f"train.per_device_train_batch_size={tasks * generations}")
        if hp.get("eval_samples", "auto") != "auto":
            out.append(f"+method.num_generations_eval={int(hp['eval_samples'])}")
        return out

    def reported_batch(self, config: dict, batch):
        if isinstance(batch, int):  # OpenAI's batch: tasks per step
            batch //= int(config.get("method", {}).get("num_generations") or 1)
        return batch

    def unused(self, hp: dict) -> list[str]:
        effort = hp.get("reasoning_effort")
        return [] if effort in (None, "auto", "default") else [f"reasoning_effort={effort}"]

    def file_problem(self, job: dict, path: Path, filename: str) -> str | None:
        """The task lines that lack a field the grader reads (file:line and the field)."""
        from lorakit.data.tasks import read_tasks
        from lorakit.evaluation.graders import spec

        needed = spec.item_fields(job["method"][self.name]["grader"])
        missing = [f for f in read_tasks(path, needed).findings if f.category == "missing_field"]
        if not missing:
            return None
        lines = "; ".join(f"{filename}:{f.line}: {f.message}" for f in missing[:20])
        more = f" (and {len(missing) - 20} more)" if len(missing) > 20 else ""
        return f"{len(missing)} task line(s) lack a field the grader reads: {lines}{more}"


register(Reinforcement())
