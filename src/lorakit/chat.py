"""`python -m lorakit.chat`: talk to a fine-tuned adapter (or a base model) in the terminal, tokens streamed as
they are generated, with the chat template the adapter was trained with.

Usage:
    python -m lorakit.chat outputs/2026-11-22/10-00-00                  # a run (its adapter/), or a checkpoint
    python -m lorakit.chat outputs/... --system "Answer in one sentence." --temperature 0
    python -m lorakit.chat --model smollm2-135m                         # the base model alone

In the chat: /reset starts the conversation over (the system prompt stays), /exit (or Ctrl-D) leaves.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from lorakit.config.compose import compose, cuda_available, model_overrides, register_resolvers
from lorakit.core.errors import exit_2_on_user_error
from lorakit.data.template import render
from lorakit.evaluation.candidates import CandidateError, check_base, parse
from lorakit.inference import engines
from lorakit.inference.decode import BASE, Row
from lorakit.inference.engine import Engine
from lorakit.inference.rules import RowDecoder
from lorakit.inference.streaming import TextStream
from lorakit.models.loading import BaseModel, load_base

log = logging.getLogger("lorakit.chat")
PROMPT, REPLY = "you> ", "assistant> "


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lorakit.chat", description=__doc__.split("\n\n")[0])
    p.add_argument("run", nargs="?", help="a run folder, its adapter/ or a checkpoint (none: the base model alone)")
    p.add_argument("--model", default=None,
                   help="base model (conf/model name, folder or hub id); default: the run's own, else smollm2-135m")
    p.add_argument("--system", default=None, help="a system prompt for the whole conversation")
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-tokens", type=int, default=512, help="longest reply in tokens")
    p.add_argument("--quant", default=None,
                   help="conf/quant name: none, nf4, int8 (the last two need CUDA); default: as the run was trained "
                        "(without a run: the model config's own)")
    return p.parse_args(argv)


def load(args: argparse.Namespace) -> tuple[Engine, BaseModel]:
    """The engine with the adapter active, and the base model with the adapter's tokenizer and chat template."""
    candidate = parse(args.run) if args.run else None
    if candidate is not None and candidate.kind != "adapter":
        raise CandidateError(f"{args.run}: give a run folder, its adapter/ folder or a checkpoint")
    run = candidate.run if candidate is not None else None
    trained = (yaml.safe_load(run.config.read_text()) or {}) if run is not None else {}
    composed = compose(*model_overrides(args.model or "smollm2-135m", args.quant))  # as python -m train composes it
    mcfg = composed.model if args.model or not trained.get("model") else OmegaConf.create(trained["model"])
    quant = composed.quant if args.quant or run is None else OmegaConf.create(trained.get("quant") or {})
    adapter = candidate.adapter if candidate is not None else None
    has_tokenizer = adapter is not None and (Path(adapter) / "tokenizer_config.json").is_file()
    base = load_base(mcfg, tokenizer_from=adapter if has_tokenizer else None)  # the template it was trained with
    if adapter is not None:
        check_base(candidate, base.name, base.config)
    engine = engines.make("lorakit", base, quant=OmegaConf.to_container(quant, resolve=True), batch_size=1,
                          cuda=cuda_available())
    if adapter is not None:
        engine.add_adapter("chat", Path(adapter))
    return engine, base


def reply(engine: Engine, base: BaseModel, messages: list[dict], args, out=sys.stdout) -> str:
    """Generate the next assistant turn, writing it to `out` as it comes; older turns are dropped (the system
    prompt kept) when the conversation outgrows the context."""
    tokenizer, eot_ids, context = base.tokenizer, base.eot_ids, base.context
    while True:
        ids = tokenizer(render(tokenizer, messages, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
        turns = [i for i, m in enumerate(messages) if m["role"] != "system"]
        if len(ids) + args.max_tokens <= context or len(turns) <= 1:
            break
        del messages[turns[0] : turns[1] + 1 if len(turns) > 1 else turns[0] + 1]
        print("(the oldest turns no longer fit the context and were dropped)", file=out)
    stream = TextStream(tokenizer, eot_ids=eot_ids, max_tokens=args.max_tokens)

    def on_text(text: str) -> None:
        out.write(text)
        out.flush()

    adapter = next(iter(engine.adapters), None)
    engine.decode([Row(ids, stream, RowDecoder(temperature=args.temperature, top_p=args.top_p),
                       adapter=adapter or BASE, on_text=on_text)])
    out.write("\n")
    out.flush()
    return stream.text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    register_resolvers()
    with exit_2_on_user_error():
        engine, base = load(args)
    system = [{"role": "system", "content": args.system}] if args.system else []
    messages = list(system)
    print(f"chatting with {args.run or 'the base model'}; /reset starts over, /exit leaves", flush=True)
    while True:
        try:
            text = input(PROMPT)
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if text.strip() == "/exit":
            return
        if text.strip() == "/reset":
            messages = list(system)
            print("(conversation reset)", flush=True)
            continue
        if not text.strip():
            continue
        messages.append({"role": "user", "content": text})
        print(REPLY, end="", flush=True)
        messages.append({"role": "assistant", "content": reply(engine, base, messages, args)})


if __name__ == "__main__":
    main()
