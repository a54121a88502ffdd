"""Inference for every evaluation and for serving: one base model load, its adapters by name, batched greedy
generation (evaluation) and batched sampling with a per-step callback (the server and the terminal chat).

Used by the evaluate stage, `python -m lorakit.compare`, `python -m lorakit.serve` and `python -m lorakit.chat`.
Adapters of one base are loaded into the same model as PEFT named adapters and switched per candidate; the base
answers come with the adapters disabled. On an unquantized base each adapter is merged while it generates (merged
LoRA decodes as fast as the base): the last one for good, the others with the base weights restored exactly
afterwards.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lorakit.core import oom
from lorakit.models.loading import BaseModel, load_model, quiet_peft_deprecation

log = logging.getLogger(__name__)


@torch.inference_mode()
def generate(model, tokenizer, prompts: list[str], *, batch_size: int, max_new_tokens: int, eot_ids: set[int],
             desc: str = "generating", adapter_names: list[str] | None = None) -> list[str]:
    """Greedy-decode every prompt, in left-padded batches of similar length; returns the new text per prompt.
    adapter_names: per prompt, the PEFT adapter that answers it ("__base__": none), mixed within a batch."""
    from transformers import GenerationConfig

    if not prompts:
        return []
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # longest first: memory peaks early
    gen_config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=sorted(eot_ids),
        pad_token_id=tokenizer.pad_token_id,
    )
    outputs: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    with tqdm(total=len(prompts), desc=desc, unit="ex") as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(device)
            mixed = {"adapter_names": [adapter_names[i] for i in idx]} if adapter_names else {}
            out = model.generate(**batch, generation_config=gen_config, **mixed)
            new = out[:, batch["input_ids"].shape[1] :]
            for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True), strict=True):
                outputs[i] = text.strip()
            bar.update(len(idx))
    return outputs


@torch.inference_mode()
def sample(model, prompt_ids: list[list[int]], *, pad_id: int, eot_ids: set[int], max_new_tokens: int,
           temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
           adapter_names: list[str] | None = None, on_step=None, finished=None, rules=None) -> list[list[int]]:
    """Decode a batch of tokenized prompts (left-padded here): greedy at temperature 0, else sampled with
    temperature and nucleus top_p (no top-k, as OpenAI's API). seed makes a sampled batch repeatable.

    on_step(tokens) gets the list of each row's new token after every decoding step (for streaming);
    finished() -> one bool per row: rows it marks end there (a stop string, their own token limit).
    rules: a lorakit.inference.rules.Rules for the batch's rows (bias, penalties, grammar, log-probabilities).
    Returns each row's new tokens (end-of-turn and padding included; lorakit.inference.streaming cuts them).
    """
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
    from transformers.generation.streamers import BaseStreamer

    class _Steps(BaseStreamer):
        prompt_seen = False

        def put(self, value):
            if not self.prompt_seen:  # generate() first passes the prompt
                self.prompt_seen = True
            elif on_step is not None:
                on_step(value.view(-1).tolist())

        def end(self):
            pass

    class _Finished(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.tensor(finished(), dtype=torch.bool, device=input_ids.device)

    device = next(model.parameters()).device
    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids):] = 1
    do_sample = temperature > 0
    gen_config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=do_sample, eos_token_id=sorted(eot_ids),
                                  pad_token_id=pad_id, **({"temperature": temperature, "top_p": top_p, "top_k": 0}
                                                          if do_sample else {}))
    if seed is not None:
        torch.manual_seed(seed)
    mixed = {"adapter_names": adapter_names} if adapter_names else {}
    out = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device), generation_config=gen_config,
                         streamer=_Steps(), stopping_criteria=StoppingCriteriaList([_Finished()] if finished else []),
                         logits_processor=LogitsProcessorList([rules] if rules is not None else []), **mixed)
    if rules is not None and out.shape[1] > width:
        rules.close(out[:, -1].tolist())
    return out[:, width:].tolist()


NO_REFERENCE_MAX_NEW_TOKENS = 256  # prompts with no reference answer (tasks): method.max_completion_length's default


def default_max_new_tokens(tokenizer, references: list[str]) -> int:
    """Room for the longest reference answer with a margin: 1.25 x its length in tokens + 16 (with no reference
    at all, NO_REFERENCE_MAX_NEW_TOKENS)."""
    if not any(references):
        return NO_REFERENCE_MAX_NEW_TOKENS
    longest = max(len(ids) for ids in tokenizer(references, add_special_tokens=False)["input_ids"])
    return int(1.25 * longest) + 16


class Engine:
    """One base model (loaded on first use) and any number of its adapters, by name."""

    name = "lorakit"

    def __init__(self, base: BaseModel, *, quant: dict | None = None, batch_size: int = 8, cuda: bool):
        """base: the model and tokenizer (lorakit.models.loading.load_base); quant: BitsAndBytesConfig fields (empty:
        unquantized); batch_size: rows generated together."""
        self.base, self.tokenizer, self.eot_ids = base, base.tokenizer, base.eot_ids
        self.quant, self.batch_size, self.cuda = dict(quant or {}), batch_size, cuda
        self.model = None
        self.adapters: dict[str, Path] = {}
        self.merged: str | None = None
        self._original: dict[str, torch.Tensor] | None = None  # base weights under LoRA, for merge="restore"
        self.loads = 0  # base model loads (one per engine)

    def load(self):
        """The model: the base, or a PeftModel holding every adapter added so far (loaded on first use)."""
        return self._base()

    def _base(self):
        if self.model is None:
            self.model = load_model(self.base, self.quant, cuda=self.cuda).eval()
            self.loads += 1
        return self.model

    def release(self) -> None:
        """Free the model's memory (the next generate() would load it again)."""
        import gc

        self.model, self.adapters, self.merged, self._original = None, {}, None, None
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def add_adapter(self, name: str, path: Path) -> None:
        """Load an adapter into the base model under `name` (PEFT named adapters: one base in memory)."""
        from peft import PeftModel

        model = self._base()
        if self.merged:
            raise RuntimeError(f"adapter {self.merged!r} is merged into the base; no adapter can be added after it")
        if isinstance(model, PeftModel):
            model.load_adapter(str(path), adapter_name=name)
        else:
            quiet_peft_deprecation()
            self.model = PeftModel.from_pretrained(model, str(path), adapter_name=name).eval()
        self.adapters[name] = path

    def generate(self, prompts: list[str], *, adapter: str | None, max_new_tokens: int, desc: str,
                 merge: str | None = None) -> list[str]:
        """Answers of the base (adapter=None) or of a loaded adapter.

        On an unquantized base, merge="last" merges the adapter into the base for good (no candidate can follow),
        merge="restore" merges it for this call and then puts the base weights back exactly as loaded: merged
        LoRA decodes about as fast as the base, unmerged LoRA up to twice as slow on a CPU.
        """
        model = self._base()
        kwargs = {"batch_size": self.batch_size, "max_new_tokens": max_new_tokens, "eot_ids": self.eot_ids,
                  "desc": desc}
        try:
            if adapter is None:
                if self.adapters:
                    with model.disable_adapter():
                        return generate(model, self.tokenizer, prompts, **kwargs)
                return generate(model, self.tokenizer, prompts, **kwargs)
            model.set_adapter(adapter)
            if merge == "last" and not self.quant:
                for other in [a for a in self.adapters if a != adapter]:
                    model.delete_adapter(other)
                self.model, self.merged = model.merge_and_unload(), adapter
                return generate(self.model, self.tokenizer, prompts, **kwargs)
            if merge == "restore" and not self.quant:
                with self._merged(model, adapter):
                    return generate(model, self.tokenizer, prompts, **kwargs)
            return generate(model, self.tokenizer, prompts, **kwargs)
        except torch.OutOfMemoryError as err:
            raise oom.eval_advice(err, self.batch_size) from None

    def generate_mixed(self, jobs: list[tuple[str | None, list[str]]], *, max_new_tokens: int) -> list[list[str]]:
        """Answers of several candidates (adapter name or None for the base, prompts) from shared batches: each
        row of a batch goes through its own adapter (PEFT's mixed-adapter batches). On a GPU decoding is bound by
        memory traffic, so three candidates in one batch cost little more than one."""
        model = self._base()
        prompts = [p for _, ps in jobs for p in ps]
        names = [adapter or "__base__" for adapter, ps in jobs for _ in ps] if self.adapters else None
        try:
            flat = generate(model, self.tokenizer, prompts, batch_size=self.batch_size,
                            max_new_tokens=max_new_tokens, eot_ids=self.eot_ids, desc="all candidates",
                            adapter_names=names)
        except torch.OutOfMemoryError as err:
            raise oom.eval_advice(err, self.batch_size) from None
        out, start = [], 0
        for _, ps in jobs:
            out.append(flat[start : start + len(ps)])
            start += len(ps)
        return out

    @contextlib.contextmanager
    def _merged(self, model, adapter: str):
        """The adapter merged into the base weights; on exit the weights are copied back from a copy kept in CPU
        memory (unmerging by subtraction would leave rounding errors in the base for the next candidate)."""
        from peft.tuners.lora import LoraLayer

        layers = {name: m.get_base_layer() for name, m in model.named_modules() if isinstance(m, LoraLayer)}
        self._original = self._original or {}
        for name, layer in layers.items():  # unmerged here: these are the weights as loaded
            if name not in self._original:
                self._original[name] = layer.weight.detach().to("cpu", copy=True)
        model.base_model.merge_adapter([adapter])
        try:
            yield
        finally:
            model.base_model.unmerge_adapter()
            with torch.no_grad():
                for name, layer in layers.items():
                    layer.weight.copy_(self._original[name])
