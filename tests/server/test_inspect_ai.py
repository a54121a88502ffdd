"""inspect-ai's `openai/` provider runs a small task against lorakit.serve, through chat completions (its default
for such a model) and through the Responses API (where it sends `include` and `store: false`): every sample is
answered, with the server's own greedy answer (one request at a time: the tiny random model's near-tied logits
can flip under the padding of a shared batch)."""

from __future__ import annotations

import pytest

pytest.importorskip("inspect_ai", reason="inspect-ai is a dev dependency (pip install -e '.[dev]')")

PROMPTS = ["Say hi", "Name a colour"]
ROUTES = {"chat": '"POST /v1/chat/completions HTTP/1.1" 200', "responses": '"POST /v1/responses HTTP/1.1" 200'}


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_inspect_ai_evaluates_against_the_server(server, tmp_path, monkeypatch, api):
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate

    monkeypatch.setenv("OPENAI_API_KEY", server.key)
    task = Task(dataset=[Sample(input=p, target="hi") for p in PROMPTS], solver=generate(), scorer=includes())
    logged = server.log.read_text().count(ROUTES[api])
    [log] = inspect_eval(task, model="openai/tiny-llama", model_base_url=f"{server.url}/v1", max_connections=1,
                         model_args={"responses_api": api == "responses"}, max_tokens=8, temperature=0, seed=7,
                         log_dir=str(tmp_path / "logs"), display="none")
    assert log.status == "success", log.error
    assert server.log.read_text().count(ROUTES[api]) >= logged + len(PROMPTS)  # the route inspect-ai was meant to use
    client = server.client()
    for sample in log.samples:  # the same request made directly gives the same answer
        if api == "chat":  # inspect-ai sends no temperature here (sampled at 1): the seed makes it repeatable
            direct = client.chat.completions.create(model="tiny-llama", max_completion_tokens=8, seed=7,
                                                    messages=[{"role": "user", "content": sample.input}])
            text, cut = direct.choices[0].message.content, direct.choices[0].finish_reason == "length"
        else:
            direct = client.responses.create(model="tiny-llama", input=sample.input, max_output_tokens=8,
                                             temperature=0)
            text, cut = direct.output_text, direct.status == "incomplete"
        assert sample.output.completion == text
        assert sample.output.stop_reason == ("max_tokens" if cut else "stop")
