"""lm-eval's `local-completions` runs a multiple-choice (loglikelihood) task, offline from a local file, against
lorakit.serve: each choice's log-likelihood equals lorakit's own forward pass over the same tokens."""

from __future__ import annotations

import json
import math

import lm_eval
import torch

QUESTIONS = [("The capital of France is", [" Paris", " Oslo", " a cat"], 0),
             ("Two plus two is", [" four", " seven"], 0),
             ("The sky on a clear day is", [" blue", " green", " loud"], 0)]


def _task(tmp_path) -> str:
    data = tmp_path / "mc.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "answer": a}) + "\n" for q, c, a in QUESTIONS))
    (tmp_path / "lorakit_mc.yaml").write_text(
        "task: lorakit_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {data}\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{{{question}}}}'\n"
        "doc_to_choice: '{{choices}}'\ndoc_to_target: '{{answer}}'\ntarget_delimiter: ''\n"
        "metric_list:\n  - metric: acc\n")
    return str(tmp_path)


def test_lm_eval_loglikelihoods_against_the_server_equal_a_forward_pass(server, tiny_dir, tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager

    from helpers import compose_cfg
    from lorakit.models.loading import load_base, load_model

    monkeypatch.setenv("OPENAI_API_KEY", server.key)
    results = lm_eval.simple_evaluate(
        model="local-completions", tasks=["lorakit_mc"], task_manager=TaskManager(include_path=_task(tmp_path)),
        model_args={"base_url": f"{server.url}/v1/completions", "model": "tiny-llama", "tokenizer": tiny_dir,
                    "tokenized_requests": True, "num_concurrent": 1, "max_retries": 1},
        batch_size=4, log_samples=True)
    samples = results["samples"]["lorakit_mc"]
    assert len(samples) == len(QUESTIONS) and 0 <= results["results"]["lorakit_mc"]["acc,none"] <= 1
    base = load_base(compose_cfg("model=tiny-llama").model)
    model, tokenizer = load_model(base, {}, cuda=False).eval(), base.tokenizer
    checked = 0
    for sample in samples:
        for (context, continuation), [(loglikelihood, _)] in zip(sample["arguments"], sample["resps"], strict=True):
            whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
            start = len(tokenizer(context, add_special_tokens=False)["input_ids"])
            with torch.no_grad():
                dist = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
            expected = sum(float(dist[t - 1, whole[t]]) for t in range(start, len(whole)))
            assert math.isclose(loglikelihood, expected, abs_tol=1e-3), (context, continuation)
            checked += 1
    assert checked == sum(len(c) for _, c, _ in QUESTIONS)
