"""GRPO speed and memory: a plain TRL GRPOTrainer + PEFT script with TRL's defaults (B0) vs lorakit's
method=reinforcement, on the same tasks, model, LoRA, learning rate, schedule, batch, completions, steps and seed.

Usage:
    python scripts/bench_grpo.py                                  # the embedded SmolLM2-135M, CPU here
    python scripts/bench_grpo.py --variant b0-fp32:bf16=false     # B0 with one GRPOConfig field changed
    python scripts/bench_grpo.py --model llama-3.2-1b --steps 20 --batch 16   # a conf/model name or a folder (CUDA)

Each variant runs in its own process, from loading the model to the last step: wall time, the part of it spent
generating (TRL's transformers generate, timed around its call), peak resident memory (CPU; peak torch.cuda memory
on CUDA), the mean reward; then the lorakit/B0 ratios.
  B0       GRPOTrainer(model, reward_funcs=[exact match], args=GRPOConfig(output_dir, lr, schedule, batch, steps,
           seed, num_generations, max_completion_length, temperature), train_dataset=<prompts in TRL's
           conversational form and the answer>, processing_class, peft_config=LoraConfig(...)): TRL's defaults,
           i.e. activation checkpointing and bf16 autocast.
  lorakit  python -m train method=reinforcement's prepare stage and lorakit.training.grpo.build_grpo_trainer with
           a string_check grader (lorakit.evaluation.graders): fp32 and no activation checkpointing on CPU, the
           LoRA merged while generating on CPU.
The tasks: scripts/dpo_recipe.py's travel requests (the destination city in capitals), from the base model; the
completions run to max_completion_length (the base model rarely stops earlier), so both sides generate alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_trainers import compose_run, measure, run_variants  # noqa: E402

GRADER = {"type": "string_check", "name": "destination", "input": "{{ sample.output_text }}",
          "reference": "{{ item.destination }}", "operation": "eq"}


def _cfg(args, work: Path):
    from rft_recipe import tasks

    train = work / "tasks.jsonl"
    train.write_text("".join(json.dumps(t) + "\n" for t in tasks(args.tasks, 2)))
    (work / "grader.json").write_text(json.dumps(GRADER))
    return compose_run(args, work, train, "method=reinforcement", f"method.grader={work / 'grader.json'}",
                       f"method.num_generations={args.generations}", f"method.max_completion_length={args.length}")


def _b0(cfg, base, cuda: bool, fields: dict):
    """The plain TRL script: what a user writes from TRL's GRPO docs."""
    from datasets import Dataset
    from omegaconf import OmegaConf
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from lorakit.training.grpo import grpo_config

    ours = grpo_config(cfg, Path(cfg.run_dir), cuda=cuda, report_to="none", tasks=cfg.data.n, has_validation=False)
    rows = [json.loads(line) for line in Path(cfg.data.train_file).read_text().splitlines()]
    data = Dataset.from_list([{"prompt": r["messages"], "destination": r["destination"]} for r in rows])

    def exact(completions, destination, **_):
        return [float(c[-1]["content"] == d) for c, d in zip(completions, destination, strict=True)]

    args = GRPOConfig(output_dir=str(Path(cfg.run_dir) / "b0"), learning_rate=ours.learning_rate,
                      lr_scheduler_type=ours.lr_scheduler_type, warmup_steps=ours.warmup_steps, max_steps=ours.max_steps,
                      per_device_train_batch_size=ours.per_device_train_batch_size,
                      num_generations=ours.num_generations, max_completion_length=ours.max_completion_length,
                      temperature=ours.temperature, logging_steps=1, save_strategy="no", report_to="none", seed=0,
                      use_cpu=not cuda, **fields)
    model = AutoModelForCausalLM.from_pretrained(base.path)
    lora = OmegaConf.to_container(cfg.lora, resolve=True)
    return GRPOTrainer(model=model, reward_funcs=[exact], args=args, train_dataset=data,
                       processing_class=base.tokenizer, peft_config=LoraConfig(**lora))


def _lorakit(cfg, base, cuda: bool):
    from lorakit.evaluation.graders.run import grade
    from lorakit.methods.reinforcement import prepared_tasks
    from lorakit.stages import prepare
    from lorakit.training.grpo import build_grpo_trainer

    prepare.run(cfg, base.tokenizer, base.eot_ids, Path(cfg.run_dir))
    rows = prepared_tasks(Path(cfg.run_dir), base.tokenizer)["train"]
    return build_grpo_trainer(cfg, Path(cfg.run_dir), base, rows,
                              lambda items, answers: [g.score for g in grade(GRADER, items, answers)],
                              cuda=cuda, report_to="none")


def _timed_generation(trainer) -> list[float]:
    """Seconds spent in each call of TRL's generation step (the transformers generate of every step)."""
    spent: list[float] = []
    inner = trainer._generate_single_turn

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    trainer._generate_single_turn = timed
    return spent


def one(args) -> dict:
    """Run one variant in this process; its figures."""
    trainer, seconds, peak, spent = measure(args, _cfg, args.tasks, _b0, _lorakit, before_train=_timed_generation)
    logged = [h for h in trainer.state.log_history if "reward" in h]
    return {"seconds": round(seconds, 1), "generation_s": round(sum(spent), 1), "peak_gib": round(peak / 2**30, 2),
            "mean_reward": round(sum(h["reward"] for h in logged) / len(logged), 3),
            "completion_length": round(sum(h["completions/mean_length"] for h in logged) / len(logged), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--variant", action="append", default=[], help="name:field=value,... (a B0 GRPOConfig change)")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--fields", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print("RESULT " + json.dumps(one(args)))
        return
    common = ["--model", args.model, "--tasks", str(args.tasks), "--steps", str(args.steps), "--batch", str(args.batch),
              "--generations", str(args.generations), "--length", str(args.length)]

    def show(name: str, r: dict) -> None:
        print(f"{name}: {r['seconds']} s ({r['generation_s']} s generating, {r['seconds'] - r['generation_s']:.1f} s "
              f"the rest), peak {r['peak_gib']} GiB, mean reward {r['mean_reward']}, completion length "
              f"{r['completion_length']}", flush=True)

    results = run_variants(__file__, common, args.variant, show)
    ours = results["lorakit"]
    for name, r in results.items():
        if name != "lorakit":
            print(f"lorakit / {name}: time {ours['seconds'] / r['seconds']:.2f}x (generation "
                  f"{ours['generation_s'] / max(r['generation_s'], 1e-9):.2f}x), memory "
                  f"{ours['peak_gib'] / r['peak_gib']:.2f}x")


if __name__ == "__main__":
    main()
