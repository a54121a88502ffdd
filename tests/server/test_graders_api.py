"""OpenAI's grader endpoints on lorakit.serve, through the official SDK over real HTTP on 127.0.0.1:
client.fine_tuning.alpha.graders.run / .validate, as OpenAI's docs call them."""

from __future__ import annotations

import pytest

import openai

EXACT = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
         "reference": "{{ item.answer }}", "operation": "eq"}


def test_run_grades_a_sample_with_each_kind_of_grader(server):
    graders = server.client().fine_tuning.alpha.graders
    result = graders.run(grader=EXACT, model_sample="Paris", item={"answer": "Paris"})
    assert result.reward == 1.0 and result.metadata.name == "exact" and result.metadata.type == "string_check"
    assert not any(v for k, v in result.metadata.errors.model_dump().items() if isinstance(v, bool))
    assert graders.run(grader=EXACT, model_sample="Lyon", item={"answer": "Paris"}).reward == 0.0

    multi = {"type": "multi", "name": "contact", "calculate_output": "(name + email) / 2",
             "graders": {"name": {"type": "text_similarity", "name": "name", "input": "{{ sample.output_json.name }}",
                                  "reference": "{{ item.name }}", "evaluation_metric": "fuzzy_match"},
                         "email": {**EXACT, "name": "email", "input": "{{ sample.output_json.email }}",
                                   "reference": "{{ item.email }}"}}}
    result = graders.run(grader=multi, model_sample='{"name": "Jon Doe", "email": "jd@example.org"}',
                         item={"name": "John Doe", "email": "jd@example.org"})
    assert result.sub_rewards == {"name": pytest.approx(14 / 15), "email": 1.0}
    assert result.reward == pytest.approx((14 / 15 + 1) / 2)

    missing = graders.run(grader=EXACT, model_sample="Paris", item={"city": "Paris"})
    assert missing.reward == 0.0 and missing.metadata.errors.invalid_variable_error


def test_a_python_grader_runs_outside_the_server_process_and_its_errors_are_reported(server):
    graders = server.client().fine_tuning.alpha.graders
    source = ("import os\n\ndef grade(sample, item):\n    if sample['output_text'] == 'boom':\n"
              "        raise RuntimeError('no city')\n    return float(os.getpid())\n")
    grader = {"type": "python", "name": "where", "source": source}
    pid = graders.run(grader=grader, model_sample="Paris", item={}).reward
    assert pid > 0 and pid != server.proc.pid
    failed = graders.run(grader=grader, model_sample="boom", item={})
    assert failed.reward == 0.0 and failed.metadata.errors.python_grader_runtime_error
    assert "RuntimeError: no city" in failed.metadata.errors.python_grader_runtime_error_details
    assert server.health()["status"] == "ok"


def test_a_model_grader_is_answered_by_a_served_model(server):
    graders = server.client().fine_tuning.alpha.graders
    grader = {"type": "label_model", "name": "judge", "model": "tiny-llama", "labels": ["good", "bad"],
              "passing_labels": ["good"], "input": [{"role": "user", "content": "Grade: {{ sample.output_text }}"}]}
    result = graders.run(grader=grader, model_sample="Paris", item={})
    assert result.reward == 0.0 and result.metadata.errors.model_grader_parse_error  # a random tiny model's reply
    with pytest.raises(openai.BadRequestError, match="'gpt-4o' is not served here"):
        graders.validate(grader={**grader, "model": "gpt-4o"})


def test_validate_answers_the_grader_back_or_every_problem(server):
    graders = server.client().fine_tuning.alpha.graders
    assert graders.validate(grader=EXACT).grader.name == "exact"
    bad = {"type": "multi", "name": "m", "calculate_output": "a + open('x')",
           "graders": {"a": {**EXACT, "operation": "equals", "reference": "{{ answer }}"}}}
    with pytest.raises(openai.BadRequestError) as err:
        graders.validate(grader=bad)
    text = str(err.value)
    assert "3 problem(s) with the grader" in text
    assert "grader.graders.a.operation: 'equals' is not one of eq, ne, like, ilike" in text
    assert "grader.graders.a.reference: {{ answer }} is not a variable" in text
    assert "grader.calculate_output: only the functions" in text
    with pytest.raises(openai.BadRequestError, match="'python_code' is not a grader type"):
        graders.run(grader={"type": "python_code", "name": "p"}, model_sample="x")
    with pytest.raises(openai.AuthenticationError):
        server.client(key="sk-wrong").fine_tuning.alpha.graders.validate(grader=EXACT)
