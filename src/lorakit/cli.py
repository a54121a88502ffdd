"""`lorakit <command> [arguments]`: every lorakit command, as the installed package's one console command.

    lorakit train +experiment=quickstart          same as: python -m train +experiment=quickstart
    lorakit serve --model smollm2-135m            same as: python -m lorakit.serve --model smollm2-135m
    lorakit <command> --help                      a command's own help

Each command runs exactly as `python -m <module>` does (its arguments, its exit status); the table below names
the module behind each.
"""

from __future__ import annotations

import runpy
import sys

COMMANDS = {  # command -> (module, what it does)
    "train": ("train", "prepare, train and evaluate a LoRA adapter (Hydra overrides; -m for a sweep)"),
    "compare": ("lorakit.compare", "compare base, adapters, few-shot prompts and API models on one test set"),
    "serve": ("lorakit.serve", "OpenAI's API on your models: chat, completions, responses, files, fine-tuning"),
    "chat": ("lorakit.chat", "talk to a base model or an adapter in the terminal"),
    "merge": ("lorakit.merge", "merge an adapter into its base model"),
    "pairs": ("lorakit.pairs", "preference pairs from a run's mistakes, for DPO"),
    "leaderboard": ("lorakit.leaderboard", "a sweep's runs ranked"),
    "migrate": ("lorakit.migrate", "bring an OpenAI fine-tuning account home"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "usage: lorakit <command> [arguments]\n\ncommands:\n" + "\n".join(lines) + \
        "\n\n`lorakit <command> --help` for a command's own arguments."


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(usage())
        sys.exit(0 if argv else 2)
    if argv[0] not in COMMANDS:
        print(f"lorakit: no command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = COMMANDS[argv[0]][0]
    sys.argv = [module, *argv[1:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
