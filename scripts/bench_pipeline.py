"""Benchmark: the whole lorakit run against a plain hand-written TRL + PEFT script, side by side.

Usage:
    .venv/bin/python scripts/bench_pipeline.py                      # quickstart settings, full tool_picker data
    .venv/bin/python scripts/bench_pipeline.py --data contacts         # another task from data/
    .venv/bin/python scripts/bench_pipeline.py --train 64 --test 20 --epochs 1    # a quick smoke run

Both sides use the same model (the embedded SmolLM2-135M-Instruct), training examples (lorakit's validation
split is turned off for this), LoRA rank/alpha/targets, epochs, batch size, learning rate and max_new_tokens;
both train, then evaluate the base model and the tuned adapter on the test set with greedy decoding. The
baseline is what a user writes from the TRL and PEFT docs: `SFTTrainer` on the `messages` dataset with TRL's
defaults, then a `generate` loop, one example at a time.
Prints train / evaluate / total wall time for each side, their ratio, and held-out exact match.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def baseline(model_dir: str, train_file: Path, test_rows: list[dict], out: Path, *, epochs: float, lr: float,
             batch: int, r: int, alpha: int, dropout: float, targets: list[str], max_new_tokens: int, seed: int) -> dict:
    """The hand-written script: TRL defaults, one-at-a-time evaluation."""
    from datasets import load_dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)  # what the docs do on each
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    dataset = load_dataset("json", data_files=str(train_file), split="train")
    args = SFTConfig(output_dir=str(out / "ckpt"), num_train_epochs=epochs, learning_rate=lr,
                     per_device_train_batch_size=batch, bf16=cuda, use_cpu=not cuda,
                     report_to="none", save_strategy="no", seed=seed, logging_steps=10)
    peft_config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config)
    trainer.train()
    trainer.save_model(str(out / "adapter"))
    t_train = time.perf_counter() - t0

    def answer(m, messages):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True).to(device)
        with torch.no_grad():
            gen = m.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        return tokenizer.decode(gen[0][ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    t1 = time.perf_counter()
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    base_out = [answer(base, row["messages"][:-1]) for row in test_rows]
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype),
                                      str(out / "adapter")).to(device).eval()
    tuned_out = [answer(tuned, row["messages"][:-1]) for row in test_rows]
    t_eval = time.perf_counter() - t1
    refs = [row["messages"][-1]["content"] for row in test_rows]
    em = lambda outs: sum(o == r.strip() for o, r in zip(outs, refs, strict=True)) / len(refs)  # noqa: E731
    return {"train_s": t_train, "eval_s": t_eval, "total_s": t_train + t_eval,
            "base_exact_match": em(base_out), "tuned_exact_match": em(tuned_out), "tuned": tuned_out}


def lorakit_run(train_file: Path, test_file: Path, out: Path, overrides: list[str]) -> dict:
    """The same job through lorakit's pipeline (as `python -m train` runs it)."""
    from hydra import compose, initialize_config_dir

    from lorakit.config.compose import register_resolvers
    from lorakit.core.paths import CONF_DIR
    from lorakit.stages.pipeline import run

    register_resolvers()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        # val_fraction=0: both sides train on exactly the same examples (the baseline has no validation split)
        cfg = compose("config", overrides=["+experiment=quickstart", f"data.train_file={train_file}",
                                           f"data.test_file={test_file}", "data.val_fraction=0", "eval.cache=false",
                                           f"run_dir={out}", *overrides])
    t0 = time.perf_counter()
    metrics = run(cfg)
    total = time.perf_counter() - t0
    timings = json.loads((out / "timings.json").read_text())
    tuned = [json.loads(line)["tuned"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    return {"train_s": timings["prepare"] + timings["train"], "eval_s": timings["evaluate"], "total_s": total,
            "base_exact_match": metrics["base"]["exact_match"], "tuned_exact_match": metrics["tuned"]["exact_match"],
            "tuned": tuned, "cfg": cfg}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="tool_picker", help="a folder under data/ with train.jsonl and test.jsonl")
    ap.add_argument("--train", type=int, default=None, help="use the first N training examples (default: all)")
    ap.add_argument("--test", type=int, default=None, help="use the first N test examples (default: all)")
    ap.add_argument("--epochs", type=float, default=None, help="override the quickstart's epochs on both sides")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from lorakit.config.compose import register_resolvers

    register_resolvers()
    from lorakit.config.compose import compose
    from lorakit.models.loading import resolve

    resolve(compose("+experiment=quickstart").model)  # a first run's one-time GGUF conversion is neither side's time
    tmp = Path(tempfile.mkdtemp(prefix="lorakit-bench-"))
    lines = {s: (ROOT / "data" / args.data / f"{s}.jsonl").read_text().splitlines() for s in ("train", "test")}
    train_file, test_file = tmp / "train.jsonl", tmp / "test.jsonl"
    train_file.write_text("\n".join(lines["train"][: args.train]) + "\n")
    test_file.write_text("\n".join(lines["test"][: args.test]) + "\n")
    overrides = [f"train.num_train_epochs={args.epochs}"] if args.epochs else []

    ours = lorakit_run(train_file, test_file, tmp / "lorakit", overrides)
    cfg = ours.pop("cfg")
    from lorakit.inference.engine import default_max_new_tokens
    from lorakit.models.loading import load_tokenizer, resolve

    test_rows = [json.loads(x) for x in test_file.read_text().splitlines()]
    references = [r["messages"][-1]["content"] for r in test_rows]
    max_new_tokens = cfg.eval.max_new_tokens or default_max_new_tokens(load_tokenizer(resolve(cfg.model)), references)
    theirs = baseline(
        resolve(cfg.model), train_file, test_rows, tmp / "baseline", epochs=cfg.train.num_train_epochs,
        lr=cfg.train.learning_rate, batch=cfg.train.per_device_train_batch_size, r=cfg.lora.r,
        alpha=cfg.lora.lora_alpha, dropout=cfg.lora.lora_dropout, targets=list(cfg.lora.target_modules),
        max_new_tokens=max_new_tokens, seed=cfg.seed,
    )
    print(f"\n{args.data}: {len(lines['train'][: args.train])} train / {len(test_rows)} test examples, "
          f"{cfg.train.num_train_epochs} epoch(s), lr {cfg.train.learning_rate}, batch "
          f"{cfg.train.per_device_train_batch_size}, LoRA r={cfg.lora.r}, {torch.get_num_threads()} threads")
    print(f"{'':10}{'train s':>10}{'eval s':>10}{'total s':>10}{'base EM':>10}{'tuned EM':>10}")
    for name, r in (("baseline", theirs), ("lorakit", ours)):
        print(f"{name:10}{r['train_s']:10.1f}{r['eval_s']:10.1f}{r['total_s']:10.1f}"
              f"{r['base_exact_match']:10.3f}{r['tuned_exact_match']:10.3f}")
    refs = [r.strip() for r in references]
    only_ours = sum(o == r != t for o, t, r in zip(ours["tuned"], theirs["tuned"], refs, strict=True))
    only_theirs = sum(t == r != o for o, t, r in zip(ours["tuned"], theirs["tuned"], refs, strict=True))
    print(f"tuned answers right for one side only: lorakit {only_ours}, baseline {only_theirs}; "
          f"predictions in {tmp}")
    (tmp / "baseline_tuned.json").write_text(json.dumps(theirs["tuned"], indent=1))
    print(f"ratio lorakit/baseline: total {ours['total_s'] / theirs['total_s']:.2f}x, "
          f"train {ours['train_s'] / theirs['train_s']:.2f}x, evaluate {ours['eval_s'] / theirs['eval_s']:.2f}x "
          f"(evaluation {theirs['eval_s'] / ours['eval_s']:.1f}x faster)")


if __name__ == "__main__":
    main()
