"""lm-eval's `local-completions` runs a multiple-choice (loglikelihood) task, offline from a local file, against
lorakit.serve: each choice's log-likelihood equals lorakit's own forward pass over the same tokens. Without a chat
template on the tiny model, and with `--apply_chat_template` on the embedded SmolLM2 with sentence answers, where
the model's next token after an answer is its end of turn (lm-eval then reads that generated token as the last
entry of the echoed log-probabilities)."""

from __future__ import annotations

import json
import math

import lm_eval
import torch

from helpers import compose_cfg, serving

QUESTIONS = [("The capital of France is", [" Paris", " Oslo", " a cat"], 0),
             ("Two plus two is", [" four", " seven"], 0),
             ("The sky on a clear day is", [" blue", " green", " loud"], 0)]
SENTENCES = [("What is the capital of France?", ["The capital of France is Paris.", "The capital of France is Oslo."], 0),
             ("What is two plus two?", ["Two plus two is four.", "Two plus two is seven."], 0),
             ("What colour is the sky on a clear day?", ["The sky is blue.", "The sky is green."], 0)]


def _task(tmp_path, questions) -> str:
    data = tmp_path / "mc.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "answer": a}) + "\n" for q, c, a in questions))
    (tmp_path / "lorakit_mc.yaml").write_text(
        "task: lorakit_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {data}\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{{{question}}}}'\n"
        "doc_to_choice: '{{choices}}'\ndoc_to_target: '{{answer}}'\ntarget_delimiter: ''\n"
        "metric_list:\n  - metric: acc\n")
    return str(tmp_path)


def _evaluate(server, model_id: str, tokenizer_dir: str, task_dir: str, monkeypatch, chat: bool) -> list[dict]:
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("OPENAI_API_KEY", server.key or "none")
    results = lm_eval.simple_evaluate(
        model="local-completions", tasks=["lorakit_mc"], task_manager=TaskManager(include_path=task_dir),
        model_args={"base_url": f"{server.url}/v1/completions", "model": model_id, "tokenizer": tokenizer_dir,
                    "tokenized_requests": True, "num_concurrent": 1, "max_retries": 1},
        batch_size=4, log_samples=True, apply_chat_template=chat)
    assert 0 <= results["results"]["lorakit_mc"]["acc,none"] <= 1
    return results["samples"]["lorakit_mc"]


def _forward_pass_checks(samples: list[dict], conf_model: str) -> list[int]:
    """Assert every choice's log-likelihood equals a forward pass; returns, per choice, the model's most likely
    token after the whole answer."""
    from lorakit.models.loading import load_base, load_model

    base = load_base(compose_cfg(f"model={conf_model}").model)
    model, tokenizer = load_model(base, {}, cuda=False).eval(), base.tokenizer
    following = []
    for sample in samples:
        for (context, continuation), [(loglikelihood, _)] in zip(sample["arguments"], sample["resps"], strict=True):
            whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
            start = len(tokenizer(context, add_special_tokens=False)["input_ids"])
            with torch.no_grad():
                dist = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
            expected = sum(float(dist[t - 1, whole[t]]) for t in range(start, len(whole)))
            assert math.isclose(loglikelihood, expected, abs_tol=1e-3), (context, continuation, loglikelihood, expected)
            following.append(int(dist[-1].argmax()))
    return following


def test_lm_eval_loglikelihoods_against_the_server_equal_a_forward_pass(server, tiny_dir, tmp_path, monkeypatch):
    samples = _evaluate(server, "tiny-llama", tiny_dir, _task(tmp_path, QUESTIONS), monkeypatch, chat=False)
    assert len(samples) == len(QUESTIONS)
    assert len(_forward_pass_checks(samples, "tiny-llama")) == sum(len(c) for _, c, _ in QUESTIONS)


def test_lm_eval_with_the_chat_template_where_answers_end_the_turn(smollm2_dir, tmp_path, monkeypatch):
    from lorakit.models.loading import load_base

    eot_ids = load_base(compose_cfg("model=smollm2-135m").model).eot_ids
    with serving.running(tmp_path / "data", "--model", "smollm2-135m") as server:
        samples = _evaluate(server, "smollm2-135m", smollm2_dir, _task(tmp_path, SENTENCES), monkeypatch, chat=True)
    assert all("<|im_start|>assistant" in args[0] for s in samples for args in s["arguments"])  # the chat template
    following = _forward_pass_checks(samples, "smollm2-135m")
    assert len(following) == sum(len(c) for _, c, _ in SENTENCES)
    assert any(t in eot_ids for t in following), "no answer ends the turn: this test would not see the end-of-turn case"
