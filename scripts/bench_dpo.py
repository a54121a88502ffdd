"""DPO speed and memory: a plain TRL DPOTrainer + PEFT script with TRL's defaults (B0) vs lorakit's method=dpo, on the
same pairs, model, LoRA, learning rate, schedule, batch, steps and seed.

Usage:
    python scripts/bench_dpo.py                       # the embedded SmolLM2-135M, CPU here
    python scripts/bench_dpo.py --model llama-3.2-1b --steps 40 --batch 8     # a conf/model name or a folder (CUDA)
    python scripts/bench_dpo.py --variant b0-fp32:bf16=false                  # B0 with one DPOConfig field changed

Each variant runs in its own process, from loading the model to the last step (B0's own tokenization included, as
lorakit's prepare stage is): wall time, peak resident memory (CPU; peak torch.cuda memory on CUDA), the loss of
every step; then lorakit/B0 ratios and the largest relative step-loss difference.
  B0       DPOTrainer(model, args=DPOConfig(output_dir, lr, schedule, batch, steps, seed), train_dataset=<prompt /
           chosen / rejected in TRL's conversational form>, processing_class, peft_config=LoraConfig(...)): TRL's
           defaults, i.e. activation checkpointing, bf16 autocast, padded batches, the reference forward every step.
  lorakit  python -m train method=dpo's prepare stage and lorakit.training.dpo.build_dpo_trainer with the defaults:
           pairs tokenized once, reference log-probs computed once before training, the LM head on reply positions
           only, no activation checkpointing on CPU.
The pairs: tool_picker prompts (data/tool_picker), the reference call preferred over the same call to another tool.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_trainers import compose_run, measure, run_variants  # noqa: E402


def pairs(n: int) -> list[dict]:
    rows = [json.loads(line) for line in (ROOT / "data" / "tool_picker" / "train.jsonl").read_text().splitlines()[:n]]
    out = []
    for row in rows:
        reply = json.loads(row["messages"][-1]["content"])
        wrong = json.dumps({**reply, "tool": "search" if reply.get("tool") != "search" else "weather"})
        out.append({"input": {"messages": row["messages"][:-1]}, "preferred_output": [row["messages"][-1]],
                    "non_preferred_output": [{"role": "assistant", "content": wrong}]})
    return out


def _cfg(args, work: Path):
    train = work / "pairs.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in pairs(args.pairs)))
    return compose_run(args, work, train, "method=dpo")


def _b0(cfg, base, cuda: bool, fields: dict):
    """The plain TRL script: what a user writes from TRL's DPO docs."""
    from datasets import Dataset
    from omegaconf import OmegaConf
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    from lorakit.training.dpo import dpo_config

    ours = dpo_config(cfg, Path(cfg.run_dir), cuda=cuda, has_validation=False, report_to="none", sequences=cfg.data.n)
    rows = [json.loads(line) for line in Path(cfg.data.train_file).read_text().splitlines()]
    data = Dataset.from_list([{"prompt": r["input"]["messages"], "chosen": r["preferred_output"],
                               "rejected": r["non_preferred_output"]} for r in rows])
    args = DPOConfig(output_dir=str(Path(cfg.run_dir) / "b0"), learning_rate=ours.learning_rate,
                     lr_scheduler_type=ours.lr_scheduler_type, warmup_steps=ours.warmup_steps, max_steps=ours.max_steps,
                     per_device_train_batch_size=ours.per_device_train_batch_size, beta=ours.beta, loss_type=ours.loss_type,
                     loss_weights=ours.loss_weights, logging_steps=1,
                     save_strategy="no", report_to="none", seed=0, use_cpu=not cuda, **fields)
    model = AutoModelForCausalLM.from_pretrained(base.path)
    lora = OmegaConf.to_container(cfg.lora, resolve=True)
    return DPOTrainer(model=model, args=args, train_dataset=data, processing_class=base.tokenizer,
                      peft_config=LoraConfig(**lora))


def _lorakit(cfg, base, cuda: bool):
    from lorakit.stages import prepare
    from lorakit.training.dpo import build_dpo_trainer

    prepare.run(cfg, base.tokenizer, base.eot_ids, Path(cfg.run_dir))
    return build_dpo_trainer(cfg, Path(cfg.run_dir), base, cuda=cuda, report_to="none")


def one(args) -> dict:
    """Run one variant in this process; its figures."""
    trainer, seconds, peak, _ = measure(args, _cfg, args.pairs, _b0, _lorakit)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"seconds": round(seconds, 1), "peak_gib": round(peak / 2**30, 2), "losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--variant", action="append", default=[], help="name:field=value,... (a B0 DPOConfig change)")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--fields", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print("RESULT " + json.dumps(one(args)))
        return
    common = ["--model", args.model, "--pairs", str(args.pairs), "--steps", str(args.steps), "--batch", str(args.batch)]
    results = run_variants(__file__, common, args.variant, lambda name, r: print(
        f"{name}: {r['seconds']} s, peak {r['peak_gib']} GiB, mean loss {sum(r['losses']) / len(r['losses']):.4f}",
        flush=True))
    ours, b0 = results["lorakit"], results["b0"]
    for name, r in results.items():
        if name != "lorakit":
            diff = max(abs(a - b) / max(abs(b), 1e-8) for a, b in zip(ours["losses"], r["losses"], strict=True))
            print(f"lorakit / {name}: time {ours['seconds'] / r['seconds']:.2f}x, memory "
                  f"{ours['peak_gib'] / r['peak_gib']:.2f}x, largest step-loss difference {100 * diff:.2f}%")
    print(json.dumps({"b0_losses": b0["losses"], "lorakit_losses": ours["losses"]}))


if __name__ == "__main__":
    main()
