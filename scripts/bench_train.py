"""Training throughput: a plain TRL script (B0) vs lorakit's defaults, same model, data, sequence length and batch.

Usage:
    python scripts/bench_train.py                                    # CPU smoke run: 2-layer SmolLM2-shaped model
    python scripts/bench_train.py --arch llama-3.1-8b --quant nf4    # 8B QLoRA (CUDA): the issue's main figure
    python scripts/bench_train.py --arch llama-3.1-8b --quant none   # 8B bf16 LoRA
    python scripts/bench_train.py --arch llama-3.2-1b --quant none
    python scripts/bench_train.py --arch llama-3.1-8b --quant nf4 --max-context     # longest context at batch 1
    python scripts/bench_train.py ... --variant liger:train.use_liger_kernel=true --variant compile:train.torch_compile=true

The model is built from the real architecture's config with random weights (throughput needs no trained
weights; nothing is downloaded) and saved once under --cache. The data is synthetic chat: token ids drawn from a
Zipf distribution, conversations of 1-3 turns with an optional system prompt and log-normal message lengths (at
--seq-len 2048: median 579 tokens, p90 1519, 3% cut at 2048; 54% of tokens labelled), loss on assistant tokens
only. Both variants get the same pre-tokenized
examples in the same order and the same optimisation settings (lr, schedule, batch, steps, seed, LoRA r=16
alpha=32 dropout=0.05 on all linear layers), so their losses are comparable step by step. What differs is what a
user gets by default:
  B0       trl.SFTTrainer + peft LoRA (+ bitsandbytes nf4/int8 on CUDA) with TRL's defaults: padded batches,
           activation checkpointing, SDPA, TRL's fused LM head.
  lorakit  lorakit.training.trainer.build_trainer with conf/train/default.yaml: padding-free batches with PyTorch's varlen
           FlashAttention (lorakit_varlen), prepare_model_for_kbit_training, plus any --variant overrides.

Printed per variant: non-padding tokens/s over the timed steps (after --warmup steps), peak
torch.cuda.max_memory_allocated (model load included, less what was allocated before; CUDA only), MFU and the
mean loss; then lorakit/B0 ratios and
the step-by-step losses. MFU = useful FLOPs / time / measured peak matmul rate of this device (bf16 8192^3 on CUDA,
fp32 on CPU). Useful FLOPs per example of n tokens, l of them labelled: 4*N_body*n + 4*N_head*l +
12*layers*heads*head_dim*n(n+1)/2 (frozen base: forward + input gradients; LM head only where the loss is; causal
attention; recomputation and LoRA's own FLOPs not counted).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

ARCHS = {  # the published configs' dimensions
    "llama-3.1-8b": dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                         num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0,
                         tie_word_embeddings=False, max_position_embeddings=131072, rms_norm_eps=1e-5),
    "llama-3.2-1b": dict(model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                         rope_theta=500000.0, tie_word_embeddings=True, max_position_embeddings=131072,
                         rms_norm_eps=1e-5),
    "mistral-7b": dict(model_type="mistral", vocab_size=32768, hidden_size=4096, intermediate_size=14336,
                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, rope_theta=1e6,
                       tie_word_embeddings=False, max_position_embeddings=32768, rms_norm_eps=1e-5, sliding_window=None),
    "smollm2-135m": dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
                         num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0,
                         tie_word_embeddings=True, max_position_embeddings=8192, rms_norm_eps=1e-5),
}
ARCHS["tiny"] = {**ARCHS["smollm2-135m"], "num_hidden_layers": 2}  # the CPU smoke test
LORAKIT_MODEL = {"llama-3.1-8b": "llama-3.1-8b", "mistral-7b": "mistral-7b"}  # else the SmolLM2 config's settings
SPECIAL = 10  # ids below this are pad/eos/chat-template markers


def build_model(arch: str, cache: Path, cuda: bool) -> Path:
    """Random-weight model of the architecture, saved once (bf16 on CUDA, fp32 on CPU)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = torch.bfloat16 if cuda else torch.float32
    target = cache / f"{arch}-{str(dtype).removeprefix('torch.')}"
    if (target / "config.json").is_file():
        return target
    dims = dict(ARCHS[arch])
    config = AutoConfig.for_model(dims.pop("model_type"), **dims, pad_token_id=0, eos_token_id=1, bos_token_id=3)
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(target)
    del model
    gc.collect()
    torch.cuda.empty_cache() if cuda else None
    return target


def tokenizer():
    """A minimal tokenizer: the data is token ids already; trainers only need the pad/eos tokens."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")), pad_token="<pad>",
                                   eos_token="<eos>", unk_token="<unk>")


def chat_examples(n: int, seq_len: int, vocab: int, seed: int = 0) -> list[dict]:
    """Synthetic chat conversations as input_ids + labels (assistant replies and their end-of-turn token)."""
    rng = np.random.default_rng(seed)
    ranks = rng.permutation(vocab - SPECIAL) + SPECIAL  # Zipf rank -> token id

    def message(median: float, sigma: float) -> list[int]:
        length = int(np.clip(rng.lognormal(math.log(median), sigma), 4, seq_len))
        return ranks[np.minimum(rng.zipf(1.2, length), vocab - SPECIAL) - 1].tolist()

    examples = []
    while len(examples) < n:
        ids, labels = [], []
        turns = [("system", message(60, 0.6))] if rng.random() < 0.5 else []
        for _ in range(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15])):
            turns += [("user", message(120, 1.0)), ("assistant", message(180, 0.9))]
        for role, content in turns:
            header = [4, 5 + ("system", "user", "assistant").index(role), 8]  # <|start|>role\n
            body = content + [1]  # + end of turn
            ids += header + body
            labels += [-100] * len(header) + (body if role == "assistant" else [-100] * len(body))
        ids, labels = ids[:seq_len], labels[:seq_len]
        if any(label != -100 for label in labels[1:]):
            examples.append({"input_ids": ids, "labels": labels})
    return examples


def useful_flops(examples: list[dict], arch: str) -> float:
    d = ARCHS[arch]
    hidden, layers, heads, kv = d["hidden_size"], d["num_hidden_layers"], d["num_attention_heads"], d["num_key_value_heads"]
    hd = d.get("head_dim", hidden // heads)
    body = layers * (2 * hidden * heads * hd + 2 * hidden * kv * hd + 3 * hidden * d["intermediate_size"])
    head = d["vocab_size"] * hidden
    total = 0.0
    for ex in examples:
        n = len(ex["input_ids"])
        labelled = sum(label != -100 for label in ex["labels"][1:])
        total += 4 * body * n + 4 * head * labelled + 12 * layers * heads * hd * n * (n + 1) / 2
    return total


def matmul_rate(cuda: bool) -> float:
    """Measured peak matmul FLOP/s: bf16 8192^3 on CUDA, fp32 1024^3 on CPU (the dtypes training runs in)."""
    n, dtype, device = (8192, torch.bfloat16, "cuda") if cuda else (1024, torch.float32, "cpu")
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize() if cuda else None
    reps = 10
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize() if cuda else None
    return 2 * n**3 * reps / (time.perf_counter() - start)


class Counting:
    """Wraps a data collator to record the examples of each micro-batch and how many positions it padded to."""

    def __init__(self, collate):
        self.collate, self.batches, self.positions = collate, [], []

    def __call__(self, examples):
        out = self.collate(examples)
        self.batches.append([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples])
        self.positions.append(out["input_ids"].numel())
        return out


def b0_trainer(model_dir: Path, dataset, tok, a, cuda: bool, out: Path):
    """What a user writes from the TRL/PEFT docs: SFTTrainer + LoraConfig (+ BitsAndBytesConfig), TRL defaults."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    kwargs = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if a.quant == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
    elif a.quant == "int8":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    if cuda:
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    args = SFTConfig(output_dir=str(out / "b0"), max_steps=a.steps, per_device_train_batch_size=a.batch,
                     gradient_accumulation_steps=a.accum, learning_rate=a.lr, lr_scheduler_type="linear",
                     warmup_steps=0, max_length=a.seq_len, logging_steps=1, save_strategy="no", report_to="none",
                     seed=0, use_cpu=not cuda, bf16=cuda)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok, peft_config=lora)


def lorakit_trainer(model_dir: Path, run_dir: Path, tok, a, cuda: bool, overrides: list[str]):
    """lorakit's own train stage with its defaults on the data saved in run_dir/data/train; only the shared
    optimisation settings are set."""
    from lorakit.config.compose import compose
    from lorakit.models.loading import BaseModel, end_of_turn_ids
    from lorakit.training.trainer import build_trainer

    cfg = compose(f"model={LORAKIT_MODEL.get(a.arch, 'smollm2-135m')}", f"quant={a.quant}", f"run_dir={run_dir}",
                  f"data.max_length={a.seq_len}", f"+train.max_steps={a.steps}", f"train.learning_rate={a.lr}",
                  f"train.per_device_train_batch_size={a.batch}", f"train.gradient_accumulation_steps={a.accum}",
                  "train.lr_scheduler_type=linear", "train.warmup_steps=0", "train.logging_steps=1",
                  "train.eval_strategy=no", "train.seed=0", "lora.target_modules=all-linear", *overrides)
    base = BaseModel(str(cfg.model.name_or_path), str(model_dir), tok, end_of_turn_ids(tok))
    return build_trainer(cfg, run_dir, base, cuda=cuda, report_to="none")


def run_variant(name: str, make, a, cuda: bool, arch: str) -> dict:
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self):
            self.ends = []

        def on_step_end(self, *args, **kwargs):
            torch.cuda.synchronize() if cuda else None
            self.ends.append(time.perf_counter())

    gc.collect()
    if cuda:  # whatever an earlier variant left allocated is not this variant's memory
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    trainer = make()
    counting = Counting(trainer.data_collator)
    trainer.data_collator = counting
    clock = Clock()
    trainer.add_callback(clock)
    if a.profile:
        profiled_train(trainer, name, a, cuda)
    else:
        trainer.train()
    peak = (torch.cuda.max_memory_allocated() - before) / 2**30 if cuda else None
    micro = a.accum
    timed = [ex for batch in counting.batches[a.warmup * micro: a.steps * micro] for ex in batch]
    seconds = clock.ends[a.steps - 1] - clock.ends[a.warmup - 1]
    tokens = sum(len(ex["input_ids"]) for ex in timed)
    positions = sum(counting.positions[a.warmup * micro: a.steps * micro])
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h][: a.steps]
    result = {"variant": name, "tokens_per_s": tokens / seconds, "peak_gib": peak,
              "flops_per_s": useful_flops(timed, arch) / seconds, "losses": losses,
              "mean_loss": float(np.mean(losses)), "padding": 1 - tokens / positions, "timed_tokens": tokens,
              "seconds": seconds, "examples_seen": [ex["input_ids"][:4] for b in counting.batches for ex in b]}
    del trainer, counting
    gc.collect()
    return result


def profiled_train(trainer, name: str, a, cuda: bool) -> None:
    """Train under torch.profiler: 3 steps recorded after the warm-up; the operators by their own device time
    (CPU time on CPU) are printed and written to --profile/<variant>.txt."""
    from torch.profiler import ProfilerActivity, profile, schedule
    from transformers import TrainerCallback

    class Step(TrainerCallback):
        def on_step_end(self, *args, **kwargs):
            prof.step()

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    a.profile.mkdir(parents=True, exist_ok=True)
    with profile(activities=activities, schedule=schedule(wait=a.warmup, warmup=1, active=3)) as prof:
        trainer.add_callback(Step())
        trainer.train()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=30, max_name_column_width=60)
    (a.profile / f"{name}.txt").write_text(table)
    print(f"profile of {name} (3 steps, by {key}):\n{table}", flush=True)


def longest_context(name: str, make, a, cuda: bool, vocab: int) -> int:
    """Longest single example (batch 1) one training step fits in memory: doubling, then bisection to ~6%."""
    from datasets import Dataset

    trainer = make()
    trainer.args.max_steps = 1

    def fits(n: int) -> bool:
        rng = np.random.default_rng(n)
        ids = rng.integers(SPECIAL, vocab, n).tolist()
        trainer.train_dataset = Dataset.from_list([{"input_ids": ids, "labels": [-100] * (n // 2) + ids[n // 2:]}])
        try:
            trainer.train()
            ok = True
        except torch.OutOfMemoryError:
            ok = False
        gc.collect()
        torch.cuda.empty_cache() if cuda else None
        print(f"  {name}: {n} tokens {'fits' if ok else 'out of memory'}", flush=True)
        return ok

    good, bad, n = 0, None, a.context_start
    while n <= a.context_limit and bad is None:
        if fits(n):
            good, n = n, n * 2
        else:
            bad = n
    while bad is not None and bad - good > max(256, good // 16):
        mid = (good + bad) // 2 // 256 * 256
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    trainer.model = trainer.model_wrapped = None  # free the model before the next variant loads its own
    gc.collect()
    return good


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=sorted(ARCHS), default=None, help="default: llama-3.1-8b on CUDA, tiny on CPU")
    p.add_argument("--quant", choices=["nf4", "int8", "none"], default=None, help="default: nf4 on CUDA, none on CPU")
    p.add_argument("--seq-len", type=int, default=None, help="max tokens per example (default 2048 CUDA, 512 CPU)")
    p.add_argument("--batch", type=int, default=None, help="micro-batch (default 8 CUDA, 4 CPU)")
    p.add_argument("--accum", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per variant (default 30 CUDA, 6 CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 5 CUDA, 2 CPU)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--variant", action="append", default=[], metavar="NAME:OVERRIDE[,OVERRIDE]",
                   help="an extra lorakit run with Hydra overrides, e.g. liger:train.use_liger_kernel=true")
    p.add_argument("--only", help="comma-separated variants to run (default: all)")
    p.add_argument("--max-context", action="store_true", help="find the longest trainable example at batch 1")
    p.add_argument("--context-start", type=int, default=4096)
    p.add_argument("--context-limit", type=int, default=1 << 20)
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "lorakit-bench-models")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--profile", type=Path, help="profile 3 steps per variant with torch.profiler; tables here")
    a = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    a.arch = a.arch or ("llama-3.1-8b" if cuda else "tiny")
    a.quant = a.quant or ("nf4" if cuda else "none")
    a.seq_len = a.seq_len or (2048 if cuda else 512)
    a.batch = a.batch or (8 if cuda else 4)
    a.steps = a.steps or (30 if cuda else 6)
    a.warmup = a.warmup if a.warmup is not None else (5 if cuda else 2)
    if a.quant != "none" and not cuda:
        p.error("--quant nf4/int8 needs CUDA (bitsandbytes); use --quant none on CPU")
    if a.profile and a.steps < a.warmup + 4:
        p.error("--profile records 3 steps after --warmup + 1: need --steps >= --warmup + 4")
    if not 0 < a.warmup < a.steps:
        p.error("need 0 < --warmup < --steps")

    from datasets import Dataset

    device = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    peak = matmul_rate(cuda)
    model_dir = build_model(a.arch, a.cache, cuda)
    tok = tokenizer()
    vocab = ARCHS[a.arch]["vocab_size"]
    n_examples = a.steps * a.batch * a.accum
    examples = chat_examples(n_examples, a.seq_len, vocab)
    lengths = sorted(len(e["input_ids"]) for e in examples)
    labelled = sum(sum(label != -100 for label in e["labels"]) for e in examples) / sum(lengths)
    print(f"device: {device}; measured peak matmul {peak / 1e12:.1f} TFLOP/s\n"
          f"model: {a.arch} (random weights), quant {a.quant}; LoRA r=16 all linear layers; seq <= {a.seq_len}, "
          f"micro-batch {a.batch} x accum {a.accum}, {a.steps} steps ({a.warmup} untimed), lr {a.lr}\n"
          f"data: {len(examples)} synthetic chats, tokens p50 {lengths[len(lengths) // 2]}, "
          f"p90 {lengths[int(len(lengths) * 0.9)]}, max {lengths[-1]}, {labelled:.0%} labelled", flush=True)

    out = Path(tempfile.mkdtemp(prefix="lorakit-bench-"))
    dataset = Dataset.from_list(examples)
    run_dir = out / "lorakit"  # lorakit's train stage reads what its prepare stage would have saved
    dataset.save_to_disk(str(run_dir / "data" / "train"))
    variants = {"B0": lambda: b0_trainer(model_dir, dataset, tok, a, cuda, out),
                "lorakit": lambda: lorakit_trainer(model_dir, run_dir, tok, a, cuda, [])}
    for spec in a.variant:
        name, _, overrides = spec.partition(":")
        variants[name] = functools.partial(lorakit_trainer, model_dir, run_dir, tok, a, cuda,
                                           [o for o in overrides.split(",") if o])
    if a.only:
        variants = {k: v for k, v in variants.items() if k in a.only.split(",")}

    report = {"device": device, "peak_flops": peak, "args": {k: str(v) for k, v in vars(a).items()}, "runs": []}
    if a.max_context:
        for name, make in variants.items():
            report["runs"].append({"variant": name, "max_context": longest_context(name, make, a, cuda, vocab)})
        print(f"\n{'variant':<16} longest trainable example at batch 1 (tokens)")
        for r in report["runs"]:
            print(f"{r['variant']:<16} {r['max_context']}")
        b0 = next((r["max_context"] for r in report["runs"] if r["variant"] == "B0"), None)
        for r in report["runs"]:
            if b0 and r["variant"] != "B0":
                print(f"{r['variant']} / B0: {r['max_context'] / b0:.2f}x (limit searched: {a.context_limit})")
    else:
        for name, make in variants.items():
            print(f"running {name} ...", flush=True)
            report["runs"].append(run_variant(name, make, a, cuda, a.arch))
        runs = {r["variant"]: r for r in report["runs"]}
        if len({tuple(map(tuple, r["examples_seen"])) for r in runs.values()}) > 1:
            print("WARNING: the variants saw different examples or orders; their losses are not comparable")
        print(f"\n{'variant':<16} {'tokens/s':>10} {'peak GiB':>9} {'MFU':>6} {'padding':>8} {'mean loss':>10}")
        for r in runs.values():
            mem = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "n/a"
            print(f"{r['variant']:<16} {r['tokens_per_s']:>10.0f} {mem:>9} {r['flops_per_s'] / peak:>6.1%} "
                  f"{r['padding']:>8.1%} {r['mean_loss']:>10.4f}")
        if "B0" in runs:
            b0 = runs["B0"]
            for name, r in runs.items():
                if name == "B0":
                    continue
                mem = f", peak memory {r['peak_gib'] / b0['peak_gib']:.2f}x" if cuda else ""
                diffs = [abs(x - y) / y for x, y in zip(r["losses"], b0["losses"], strict=True)]
                print(f"{name} / B0: tokens/s {r['tokens_per_s'] / b0['tokens_per_s']:.2f}x{mem}, mean loss "
                      f"{(r['mean_loss'] - b0['mean_loss']) / b0['mean_loss']:+.2%}, largest per-step loss "
                      f"difference {max(diffs):.2%}")
            print("\nloss per step: " + " | ".join(runs))
            for i, step in enumerate(zip(*(r["losses"] for r in runs.values()), strict=True), 1):
                print(f"  {i:>3}: " + " | ".join(f"{x:.4f}" for x in step))
        for r in report["runs"]:
            r.pop("examples_seen")
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
