#!/usr/bin/env bash
# Download, into .whl/, the wheels a bare GPU box without internet needs beyond torch/transformers' own image
# (it has torch, peft, accelerate and triton): the versions installed in .venv (= constraints.txt), for CPython 3.12
# x86-64. Run scripts/setup.sh first.
# Then, on the GPU box (device tool, carry [".whl"]): bash scripts/gpu_session.sh
set -euo pipefail
cd "$(dirname "$0")/.."
pin() { .venv/bin/python -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1" 2>/dev/null || true; }
mkdir -p .whl
for name in transformers trl peft datasets bitsandbytes liger-kernel hydra-core omegaconf dill multiprocess; do
  version=$(pin "$name")
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$name${version:+==$version}"
done
# hydra-core needs antlr4 4.9.3, which PyPI has only as a source archive: build its (pure-Python) wheel here
python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
# the embedded model's tokenizer (not its weights), from which tests/test_gpu.py builds the tiny test model there
.venv/bin/python -c "import sys; sys.path[:0] = ['src', 'tests']; from helpers import compose_cfg; from lorakit.models import resolve; print(resolve(compose_cfg('model=smollm2-135m').model))" >/dev/null
src="${LORAKIT_CACHE:-$HOME/.cache/lorakit}/models/SmolLM2-135M-Instruct.Q4_1"
rm -rf .whl/lorakit-cache && mkdir -p .whl/lorakit-cache/models/SmolLM2-135M-Instruct.Q4_1
cp "$src"/tokenizer* "$src"/chat_template* .whl/lorakit-cache/models/SmolLM2-135M-Instruct.Q4_1/ 2>/dev/null || true
du -sh .whl && ls .whl
