"""GRPO on the tiny model with a grader as the reward: the rewards TRL logs are the grader's scores of the
completions it generated, from the exact inference prompt, with each row's fields as the grader's item."""

from __future__ import annotations

import json
import statistics

import pytest

from helpers import compose_cfg, tool_picker_rows
from lorakit.data.template import prompt_and_reference
from lorakit.evaluation.graders import spec
from lorakit.evaluation.graders.run import grade
from lorakit.models.loading import BaseModel, end_of_turn_ids, load_tokenizer
from lorakit.training.grpo import build_grpo_trainer

GRADER = spec.check({"type": "text_similarity", "name": "close", "input": "{{ sample.output_text }}",
                     "reference": "{{ item.answer }}", "evaluation_metric": "fuzzy_match"})


def test_grpo_rewards_are_the_graders_scores_of_its_completions(tmp_path, tiny_dir):
    tokenizer = load_tokenizer(tiny_dir)
    rows = [{"prompt": prompt_and_reference(tokenizer, r["messages"][:-1])[0],
             "item": {"messages": r["messages"][:-1], "answer": r["messages"][-1]["content"]}}
            for r in tool_picker_rows("train", 8)]
    seen = []

    def score(items, answers):
        scores = [g.score for g in grade(GRADER, items, answers)]
        seen.append((items, answers, scores))
        return scores

    cfg = compose_cfg("model=tiny-llama", "method=reinforcement", "method.num_generations=4",
                      "method.max_completion_length=8", "method.learning_rate=1e-3",
                      "train.per_device_train_batch_size=4", "+train.max_steps=2", "train.logging_steps=1",
                      "train.save_strategy=no", run_dir=tmp_path)
    base = BaseModel("tiny-llama", tiny_dir, tokenizer, end_of_turn_ids(tokenizer))
    trainer = build_grpo_trainer(cfg, tmp_path, base, rows, score, cuda=False, report_to="none")
    assert (trainer.args.num_generations, trainer.args.max_completion_length, trainer.args.learning_rate) == (4, 8, 1e-3)
    prompt = trainer.train_dataset[0]["prompt"]
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]  # as lorakit.inference.engine tokenizes a prompt
    tokenizer.add_bos_token = True  # as Llama's and Mistral's: plain text gets a BOS, which their templates write
    assert tokenizer(prompt)["input_ids"] != ids
    assert trainer._tokenize_prompts([prompt])[0] == [ids]  # trained on exactly the inference prompt's tokens
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert [h["step"] for h in logged] == [1, 2]
    for (items, answers, scores), h in zip(seen, logged, strict=True):
        assert len(answers) == 4 and len({i["answer"] for i in items}) == 1  # 4 completions of one prompt per step
        assert h["reward"] == pytest.approx(statistics.mean(scores), abs=1e-6)
        assert all(0 <= s <= 1 for s in scores) and items[0]["messages"][-1]["role"] == "user"
    assert any(not (p == lora[n]).all() for n, p in trainer.model.named_parameters() if n in lora)


def test_a_model_grader_as_the_reward_asks_its_grading_model_and_logs_what_it_cannot_grade(tmp_path, tiny_dir, caplog):
    from lorakit.methods.reinforcement import reward

    grader = {"type": "label_model", "name": "verdict", "model": "tiny-llama", "labels": ["yes", "no"],
              "passing_labels": ["yes"],
              "input": [{"role": "user", "content": "Is {{ sample.output_text }} the city {{ item.answer }}?"}]}
    (tmp_path / "grader.json").write_text(json.dumps(grader))
    cfg = compose_cfg("model=tiny-llama", "method=reinforcement", f"method.grader={tmp_path / 'grader.json'}",
                      run_dir=tmp_path)
    tokenizer = load_tokenizer(tiny_dir)
    score = reward(cfg, BaseModel("tiny-llama", tiny_dir, tokenizer, end_of_turn_ids(tokenizer)), cuda=False)
    with caplog.at_level("WARNING"):
        scores = score([{"answer": "Oslo"}, {"answer": "Lyon"}, {}], ["Oslo", "Paris", "Rome"])
    assert scores == [0.0, 0.0, 0.0]  # the random tiny model answers no label; the last item lacks its field
    warned = [r.getMessage() for r in caplog.records if "not graded" in r.getMessage()]
    assert any("the grading model's reply is not one of the labels" in w for w in warned)  # it was asked
    assert any("item.answer is not in the item" in w for w in warned) and len(warned) == 2  # the first of each kind
