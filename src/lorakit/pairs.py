"""`python -m lorakit.pairs`: preference pairs from a tuned model's own mistakes, for "supervised, then DPO on what it
still gets wrong".

Usage:
    python -m lorakit.pairs outputs/<run> data.train_file=train.jsonl          # writes outputs/<run>/pairs.jsonl
    python -m lorakit.pairs outputs/<run> data.train_file=more.jsonl --out pairs.jsonl eval.batch_size=16
    python -m train method=dpo data.train_file=outputs/<run>/pairs.jsonl init_from=outputs/<run>   # then DPO

The run's adapter answers every conversation of data.train_file (chat JSONL, or any format lorakit reads) at its last
assistant turn, greedily, as the evaluate stage does. Where the answer differs from the reference (exact match after
stripping whitespace), the pair {"input": the prompt, "preferred_output": the reference, "non_preferred_output": the
answer} is written in OpenAI's preference format. Overrides (key=value) apply to the run's own config.yaml: the
model, data and eval settings it was trained and evaluated with.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lorakit.config.compose import cuda_available
from lorakit.core.errors import UserError, exit_2_on_user_error
from lorakit.core.runs import RunFolder, find_adapter, write_jsonl
from lorakit.data.checks import SpecialTokens
from lorakit.data.reading import Example, read_examples
from lorakit.data.template import prompt_and_reference
from lorakit.inference import engines
from lorakit.inference.engine import default_max_new_tokens
from lorakit.models.loading import load_base

log = logging.getLogger("lorakit.pairs")


def _config(run: Path, overrides: list[str]) -> DictConfig:
    """The run's config.yaml with the overrides applied.

    Raises:
        UserError: the folder holds no run (config.yaml), or its adapter is missing, or no data.train_file is set.
    """
    folder = RunFolder(run)
    if not folder.config.is_file() or find_adapter(run) is None:
        raise UserError(f"{run} is not a finished run folder (it needs config.yaml and adapter/); give the folder of "
                        "a supervised run, e.g. outputs/2026-12-01/10-00-00")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise UserError(f"{bad}: overrides are key=value (e.g. data.train_file=train.jsonl)")
    cfg = OmegaConf.merge(OmegaConf.load(folder.config), OmegaConf.from_dotlist(overrides))
    if not cfg.data.get("train_file"):
        raise UserError("set data.train_file=<chat JSONL with reference replies> to collect the mistakes on")
    return cfg


def mistakes(cfg: DictConfig, adapter: Path, examples: list[Example], *, cuda: bool) -> list[tuple[Example, str]]:
    """(example, the adapter's answer) for every example whose answer differs from its reference."""
    base = load_base(cfg.model, tokenizer_from=adapter)
    split = [prompt_and_reference(base.tokenizer, ex.messages, ex.tools) for ex in examples]
    engine = engines.make("lorakit", base, quant=OmegaConf.to_container(cfg.quant, resolve=True),
                          batch_size=int(cfg.eval.batch_size), cuda=cuda)
    engine.add_adapter("tuned", adapter)
    references = [ref for _, ref in split]
    answers = engine.generate([p for p, _ in split], adapter="tuned", desc="answers",
                              max_new_tokens=cfg.eval.get("max_new_tokens") or default_max_new_tokens(base.tokenizer,
                                                                                                    references))
    return [(ex, answer) for ex, answer, ref in zip(examples, answers, references, strict=True)
            if answer.strip() != ref.strip()]


def pair_record(ex: Example, answer: str) -> dict:
    """One pair in OpenAI's preference format: the prompt, the reference reply preferred over the model's answer."""
    given = {"messages": ex.messages[:-1], **({"tools": ex.tools} if ex.tools else {})}
    preferred = {k: v for k, v in ex.messages[-1].items() if k != "weight"}
    return {"input": given, "preferred_output": [preferred],
            "non_preferred_output": [{"role": "assistant", "content": answer}]}


def run(run_dir: Path, overrides: list[str], out: Path | None = None) -> Path:
    """Write the pairs of the run's mistakes on data.train_file; return the file written."""
    cfg = _config(run_dir, overrides)
    adapter = find_adapter(run_dir)
    examples = read_examples(cfg.data.train_file, cfg.data.get("format", "auto"), cfg.data.get("csv_columns"),
                             SpecialTokens())
    examples = [ex for ex in examples if ex.messages[-1]["role"] == "assistant"]
    wrong = mistakes(cfg, adapter, examples, cuda=cuda_available())
    out = out or run_dir / "pairs.jsonl"
    write_jsonl(out, (pair_record(ex, answer) for ex, answer in wrong))
    log.info("%d of %d answers differ from the reference: %d pairs written to %s", len(wrong), len(examples),
             len(wrong), out)
    if not wrong:
        log.warning("the model answers every example as its reference: there is nothing for DPO to correct here")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lorakit.pairs", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run's folder (it holds config.yaml and adapter/)")
    parser.add_argument("overrides", nargs="*", help="key=value settings over the run's config, e.g. data.train_file=...")
    parser.add_argument("--out", type=Path, help="the pairs file to write (default: <run_dir>/pairs.jsonl)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    with exit_2_on_user_error():
        run(args.run_dir, args.overrides, args.out)


if __name__ == "__main__":
    main()
