"""`lorakit.serve --engine vllm` with the official SDK, beside `lorakit.serve` on its own engine, both serving
SmolLM2 and one adapter: the same greedy answers through chat (plain and streamed), completions (with logprobs
close to lorakit's forward pass) and responses, the client's model ids in the replies, the same refusals, and a
deleted model gone from both.
Runs where vLLM is installed (`bash scripts/setup_vllm.sh`); elsewhere it is skipped, saying so."""

from __future__ import annotations

import httpx
import pytest

import openai
from helpers import serving, tool_picker_rows
from lorakit.inference import vllm_engine

pytestmark = pytest.mark.skipif(vllm_engine.find() is None, reason="no vLLM installed: bash scripts/setup_vllm.sh")


def test_vllm_behind_lorakit_serve_answers_as_lorakits_engine(smollm2_adapters, tmp_path):
    args = ("--model", "smollm2-135m", "--adapters", f"tuned={smollm2_adapters / 'A' / 'adapter'}", "--max-tokens", "24")
    with serving.running(tmp_path / "ours", *args, "--engine", "lorakit") as ours, \
            serving.running(tmp_path / "theirs", *args, "--engine", "vllm", timeout=600) as theirs:
        assert theirs.health()["engine"] == "vllm" and ours.health()["engine"] == "lorakit"
        a, b = ours.client(key="x"), theirs.client(key="x")
        rows = tool_picker_rows("test", 6)
        same = total = 0
        for model in ("smollm2-135m", "tuned"):
            for row in rows:
                messages = [m for m in row["messages"] if m["role"] != "assistant"]
                mine = a.chat.completions.create(model=model, messages=messages, temperature=0)
                got = b.chat.completions.create(model=model, messages=messages, temperature=0)
                assert got.model == model and got.choices[0].finish_reason in ("stop", "length")
                same += mine.choices[0].message.content == got.choices[0].message.content
                total += 1
        assert same >= 0.8 * total, (same, total)
        stream = b.chat.completions.create(model="tuned", messages=[{"role": "user", "content": "Say hi"}],
                                           temperature=0, max_tokens=8, stream=True)
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        plain = b.chat.completions.create(model="tuned", messages=[{"role": "user", "content": "Say hi"}],
                                          temperature=0, max_tokens=8)
        assert streamed == plain.choices[0].message.content
        ids = [1, 504, 3458, 282, 4649, 314]
        mine = a.completions.create(model="smollm2-135m", prompt=ids, max_tokens=1, echo=True, logprobs=1)
        got = b.completions.create(model="smollm2-135m", prompt=ids, max_tokens=1, echo=True, logprobs=1)
        for x, y in zip(mine.choices[0].logprobs.token_logprobs[1:len(ids)],
                        got.choices[0].logprobs.token_logprobs[1:len(ids)], strict=True):
            assert x == pytest.approx(y, abs=2e-2)
        answer = b.responses.create(model="tuned", input="Say hi", max_output_tokens=8, temperature=0)
        assert answer.model == "tuned" and answer.output_text
        for server in (ours, theirs):
            refused = httpx.post(f"{server.url}/v1/chat/completions", timeout=60, json={
                "model": "tuned", "messages": [{"role": "user", "content": "hi"}], "made_up": 1})
            assert refused.status_code == 400 and refused.json()["error"]["param"] == "made_up"
        b.models.delete("tuned")  # unloaded from vLLM too; the base answers on
        with pytest.raises(openai.NotFoundError):
            b.chat.completions.create(model="tuned", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert b.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "hi"}],
                                         max_tokens=2).choices[0].message.content is not None
