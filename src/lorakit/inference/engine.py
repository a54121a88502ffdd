"""Inference for every evaluation and for serving: one base model load, its adapters by name, and every answer
decoded by one loop (lorakit.inference.decode): evaluation's greedy batches here, the server's requests through
lorakit.inference.scheduler, the terminal chat through Engine.decode.

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
from lorakit.inference.decode import BASE, DecodeLoop, Row, run
from lorakit.inference.streaming import TextStream
from lorakit.models.loading import BaseModel, load_model, quiet_peft_deprecation

log = logging.getLogger(__name__)


def generate(model, tokenizer, prompts: list[str], *, batch_size: int, max_new_tokens: int, eot_ids: set[int],
             desc: str = "generating", adapter_names: list[str] | None = None) -> list[str]:
    """Greedy-decode every prompt, at most batch_size at once, longest first (memory peaks early); a prompt joins
    as soon as another answer ends. Returns the new text per prompt.
    adapter_names: per prompt, the PEFT adapter that answers it (BASE: none), mixed within a batch."""
    if not prompts:
        return []
    encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    rows = [Row(ids, TextStream(tokenizer, eot_ids=eot_ids, max_tokens=max_new_tokens),
                adapter=adapter_names[i] if adapter_names else BASE, index=i) for i, ids in enumerate(encoded)]
    loop = DecodeLoop(model, pad_id=tokenizer.pad_token_id, mixed=bool(adapter_names))
    with tqdm(total=len(prompts), desc=desc, unit="ex") as bar:
        run(loop, sorted(rows, key=lambda r: -len(r.prompt_ids)), max_rows=batch_size, on_end=lambda _: bar.update())
    return [r.stream.text.strip() for r in rows]


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

    def decode(self, rows: list[Row], *, max_rows: int | None = None) -> None:
        """Decode the rows to their ends (their adapters loaded already), at most max_rows (batch_size) at once."""
        model = self._base()
        loop = DecodeLoop(model, pad_id=self.tokenizer.pad_token_id, mixed=bool(self.adapters) and not self.merged)
        try:
            run(loop, rows, max_rows=max_rows or self.batch_size)
        except torch.OutOfMemoryError as err:
            raise oom.eval_advice(err, self.batch_size) from None

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
        names = [adapter or BASE for adapter, ps in jobs for _ in ps] if self.adapters else None
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
