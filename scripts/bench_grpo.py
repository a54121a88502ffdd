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
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

GRADER = {"type": "string_check", "name": "destination", "input": "{{ sample.output_text }}",
          "reference": "{{ item.destination }}", "operation": "eq"}


def _cfg(args, work: Path):
    from lorakit.config.compose import compose
    from rft_recipe import tasks

    train = work / "tasks.jsonl"
    train.write_text("".join(json.dumps(t) + "\n" for t in tasks(args.tasks, 2)))
    (work / "grader.json").write_text(json.dumps(GRADER))
    return compose("method=reinforcement", f"method.grader={work / 'grader.json'}", f"model={args.model}",
                   f"data.train_file={train}", "data.test_file=null", "data.test_fraction=0", "data.val_fraction=0",
                   f"+train.max_steps={args.steps}", f"train.per_device_train_batch_size={args.batch}",
                   f"method.num_generations={args.generations}", f"method.max_completion_length={args.length}",
                   "train.logging_steps=1", "train.save_strategy=no", "seed=0", f"run_dir={work}")


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
    from lorakit.stages import prepare
    from lorakit.stages.train import prepared_tasks
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
    import torch
    from omegaconf import open_dict

    from lorakit.config.compose import cuda_available
    from lorakit.models.loading import load_base

    cuda = cuda_available()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _cfg(args, Path(tmp))
        with open_dict(cfg):
            cfg.data.n = args.tasks
        base = load_base(cfg.model)
        fields = dict(f.split("=", 1) for f in args.fields)
        fields = {k: json.loads(v) if v not in ("true", "false") else v == "true" for k, v in fields.items()}
        start = time.perf_counter()
        trainer = _lorakit(cfg, base, cuda) if args.run == "lorakit" else _b0(cfg, base, cuda, fields)
        spent = _timed_generation(trainer)
        trainer.train()
        seconds = time.perf_counter() - start
    logged = [h for h in trainer.state.log_history if "reward" in h]
    peak = (torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
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
    variants = [("b0", []), *[(v.split(":")[0], v.split(":", 1)[1].split(",")) for v in args.variant], ("lorakit", [])]
    results = {}
    for name, fields in variants:
        run = "lorakit" if name == "lorakit" else "b0"
        out = subprocess.run([sys.executable, __file__, *common, "--run", run, "--fields", *fields], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        results[name] = r = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
        print(f"{name}: {r['seconds']} s ({r['generation_s']} s generating, {r['seconds'] - r['generation_s']:.1f} s "
              f"the rest), peak {r['peak_gib']} GiB, mean reward {r['mean_reward']}, completion length "
              f"{r['completion_length']}", flush=True)
    ours = results["lorakit"]
    for name, r in results.items():
        if name != "lorakit":
            print(f"lorakit / {name}: time {ours['seconds'] / r['seconds']:.2f}x (generation "
                  f"{ours['generation_s'] / max(r['generation_s'], 1e-9):.2f}x), memory "
                  f"{ours['peak_gib'] / r['peak_gib']:.2f}x")


if __name__ == "__main__":
    main()
