#!/usr/bin/env bash
# Every GPU measurement and test this project owes, in one command on a bare GPU box without internet.
# Prepare here: bash scripts/gpu_wheels.sh   (wheels + tiny test model in .whl/, ~59 MiB)
# Run there:    bash scripts/gpu_session.sh [quick]    (results and logs in $OUT, or outputs/gpu)
# "quick" runs the tests and the 1B benchmark only (~5 min); the full session takes ~25 min on an H100.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/tests PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline \
       LORAKIT_CACHE=$PWD/.whl/lorakit-cache TOKENIZERS_PARALLELISM=false
log() { grep --line-buffered -v -e 'it/s]' -e 's/it]' -e 'Warning' -e 'warnings.warn' | tee "$OUT/$1"; }
{ nvidia-smi; python3 -c "import torch, transformers, trl, peft, bitsandbytes; print(torch.__version__, transformers.__version__, trl.__version__, peft.__version__, bitsandbytes.__version__)"; } 2>&1 | log env.txt
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_attention.py tests/test_train.py 2>&1 | log tests.txt
bench() { name=$1; shift; python3 scripts/bench_train.py --json "$OUT/$name.json" "$@" 2>&1 | log "$name.txt"; }
bench 1b_bf16 --arch llama-3.2-1b --quant none --variant liger:train.use_liger_kernel=true
[ "${1:-}" = quick ] && exit 0
bench 8b_nf4 --arch llama-3.1-8b --quant nf4 --variant liger:train.use_liger_kernel=true \
      --variant no_ckpt:train.activation_checkpointing=false --variant compile:train.torch_compile=true
bench 8b_bf16 --arch llama-3.1-8b --quant none --only B0,lorakit
bench 8b_nf4_context --arch llama-3.1-8b --quant nf4 --max-context --variant offload:+train.activation_offloading=true
