"""Graders in OpenAI's JSON, scored against hand-worked values (OpenAI's documented examples among them), and
validation that names every problem with its fix."""

from __future__ import annotations

import pytest

from lorakit.evaluation.graders import formula, spec
from lorakit.evaluation.graders.run import grade
from lorakit.evaluation.graders.templating import render, sample_of

OUT, REF = "{{ sample.output_text }}", "{{ item.answer }}"


def _check(operation):
    return {"type": "string_check", "name": "s", "input": OUT, "reference": REF, "operation": operation}


def _similar(metric):
    return {"type": "text_similarity", "name": "t", "input": OUT, "reference": REF, "evaluation_metric": metric}


def _scores(grader, answers, references):
    return [g.score for g in grade(spec.check(grader), [{"answer": r} for r in references], answers)]


@pytest.mark.parametrize(("operation", "expected"), [("eq", [1, 0, 0, 0]), ("ne", [0, 1, 1, 1]),
                                                     ("like", [1, 1, 0, 0]), ("ilike", [1, 1, 1, 0])])
def test_string_check_operations_as_openai_defines_them(operation, expected):
    answers = ["Paris", "It is Paris.", "it is paris", "Lyon"]
    assert _scores(_check(operation), answers, ["Paris"] * 4) == expected
    assert _scores(_check("eq"), ["Paris "], ["Paris"]) == [0.0]  # no whitespace stripped, as OpenAI's eq


@pytest.mark.parametrize(("metric", "answer", "reference", "expected"), [
    ("fuzzy_match", "Paris", "paris", 0.8),               # Indel distance 2 over 10 characters
    ("rouge_1", "a cat sat down", "the cat sat", 4 / 7),  # 2 words shared: P 2/4, R 2/3
    ("rouge_2", "a cat sat down", "the cat sat", 0.4),    # "cat sat": P 1/3, R 1/2
    ("rouge_l", "a cat sat down", "the cat sat", 4 / 7),  # LCS "cat sat"
    ("gleu", "the cat sat down", "the cat sat", 0.6),     # 6 shared 1-4-grams of 10 in the answer, 6 in the reference
    ("meteor", "the cat sat", "the cat sat", 0.9815),     # all 3 words in one chunk: 1 - 0.5 * (1/3)^3
    ("bleu", "the cat sat on the mat", "the cat sat on the mat", 1.0),
    ("bleu", "dog", "the cat sat on the mat", 0.0),
])
def test_text_similarity_against_hand_worked_scores(metric, answer, reference, expected):
    assert _scores(_similar(metric), [answer], [reference]) == [pytest.approx(expected, abs=1e-4)]


def test_openai_documented_multi_grader_on_json_output():
    """The graders guide's example: a fuzzy name match and an exact email, averaged."""
    grader = {"type": "multi", "name": "contact",
              "graders": {"name": {"name": "name_grader", "type": "text_similarity",
                                   "input": "{{sample.output_json.name}}", "reference": "{{item.name}}",
                                   "evaluation_metric": "fuzzy_match", "pass_threshold": 0.9},
                          "email": {"name": "email_grader", "type": "string_check",
                                    "input": "{{sample.output_json.email}}", "reference": "{{item.email}}",
                                    "operation": "eq"}},
              "calculate_output": "(name + email) / 2"}
    item = {"name": "John Doe", "email": "john.doe@gmail.com"}
    answers = ['{"name": "John Doe", "email": "john.doe@gmail.com"}', '{"name": "Jon Doe", "email": "jd@x.org"}',
               "not JSON"]
    grades = grade(spec.check(grader), [item] * 3, answers)
    assert grades[0].score == 1.0 and grades[0].sub == {"name": 1.0, "email": 1.0}
    assert grades[1].score == pytest.approx((1 - 1 / 15) / 2)  # "Jon Doe" vs "John Doe": 1 deletion in 15
    assert grades[2].score == 0.0 and grades[2].flag == "invalid_variable_error"
    assert "sample.output_json is not in the sample" in grades[2].error


def test_templates_reach_nested_fields_and_refuse_missing_ones():
    item = {"answer": {"city": "Oslo", "tags": ["a", "b"]}, "n": 3}
    sample = sample_of('{"x": [1, 2]}')
    assert render("{{item.answer.city}}/{{ item.answer.tags[1] }}/{{item.n}}", item, sample) == "Oslo/b/3"
    assert render("{{ sample.output_json.x }} {{item.answer.tags}}", item, sample) == '[1, 2] ["a", "b"]'
    with pytest.raises(KeyError, match=r"item.answer.country is not in the item"):
        render("{{ item.answer.country }}", item, sample)
    assert spec.item_fields({"type": "multi", "graders": {"a": _check("eq"), "b": {
        **_similar("bleu"), "input": "{{ item.question }} {{sample.output_text}}"}}}) == {"answer", "question"}


def test_formulas_are_arithmetic_only():
    tree = formula.parse("max(a, b) ^ 2 - abs(-c) / 4 + sqrt(4) * floor(1.5)", {"a", "b", "c"})
    assert formula.evaluate(tree, {"a": 0.5, "b": 0.25, "c": 1.0}) == pytest.approx(0.25 - 0.25 + 2)
    for bad, why in [("__import__('os').system('true')", "only the functions"), ("a.real", "not allowed"),
                     ("a[0]", "not allowed"), ("x + 1", "'x' is not one of the graders"), ("'a' * 3", "not a number"),
                     ("a if b else c", "not allowed"), ("a % 2", "Mod is not allowed"), ("", "empty"),
                     ("a +", "not a formula"), ("min", "'min' is not one of the graders"),
                     ("(lambda: 1)()", "only the functions")]:
        with pytest.raises(formula.FormulaError, match=why):
            formula.parse(bad, {"a", "b", "c"})
    with pytest.raises(formula.FormulaError, match="cannot be computed"):
        formula.evaluate(formula.parse("a / b", {"a", "b"}), {"a": 1.0, "b": 0.0})


def test_validate_reports_every_problem_with_its_fix():
    graders = {"multi": {"type": "multi", "graders": {
        "exact": {"type": "string_check", "name": "e", "input": "{{ sample.text }}", "reference": REF,
                  "operation": "equals"},
        "sim": {"type": "text_similarity", "name": "s", "input": OUT, "reference": "{{ answer }}",
                "evaluation_metric": "cosine"},
        "code": {"type": "python", "name": "p", "source": "def score(sample, item):\n    return 1\n"},
        "judge": {"type": "label_model", "name": "j", "model": "smollm2", "labels": ["good", "bad"],
                  "passing_labels": ["great"], "input": [{"role": "judge", "content": OUT}]},
        "rate": {"type": "score_model", "name": "r", "model": "", "input": [{"role": "user", "content": OUT}],
                 "range": [1, 0], "sampling_params": {"temprature": 0}, "extra": 1},
    }, "calculate_output": "exact + sim + missing"}}
    with pytest.raises(spec.GraderError) as err:
        spec.load(graders)
    text = str(err.value)
    for expected in [
        "graders.multi.graders.exact.input: {{ sample.text }}: the sample has output_text, output_json, output_tools",
        "graders.multi.graders.exact.operation: 'equals' is not one of eq, ne, like, ilike",
        "graders.multi.graders.sim.reference: {{ answer }} is not a variable",
        "graders.multi.graders.sim.evaluation_metric: cosine needs an embedding model",
        "graders.multi.graders.code.source: defines no top-level grade(sample, item) function",
        "graders.multi.graders.judge.input[0].role: 'judge' is not one of user, assistant, system, developer",
        "graders.multi.graders.judge.passing_labels: must be a non-empty list of some of the labels (good, bad)",
        "graders.multi.graders.rate.extra: not a field of a score_model grader",
        "graders.multi.graders.rate.model: must name the grading model",
        "graders.multi.graders.rate.range: must be two numbers, low < high",
        "graders.multi.graders.rate.sampling_params.temprature: not a sampling parameter (did you mean 'temperature'?)",
        "graders.multi.calculate_output: 'missing' is not one of the graders (code, exact, judge, rate, sim)",
    ]:
        assert expected in text, expected
    assert text.startswith("12 problem(s)")  # the mapping's key names the multi grader
    assert spec.problems({"type": "string_chek"}) == [
        "grader.type: 'string_chek' is not a grader type (did you mean 'string_check'?); choose from string_check, "
        "text_similarity, python, score_model, label_model, multi"]


def test_grader_files_in_yaml_or_json(tmp_path):
    path = tmp_path / "graders.yaml"
    path.write_text("exact:\n  type: string_check\n  input: '{{ sample.output_text }}'\n  reference: "
                    "'{{ item.answer }}'\n  operation: eq\n")
    assert list(spec.load(path)) == ["exact"]
    (tmp_path / "one.json").write_text('{"type": "python", "name": "p", "source": "def grade(s, i):\\n  return 1"}')
    assert list(spec.load(tmp_path / "one.json")) == ["p"]
    with pytest.raises(spec.GraderError, match=r"^eval.graders: .*absent.yaml: no such grader file"):
        spec.load(tmp_path / "absent.yaml", where="eval.graders")
    (tmp_path / "labels.yaml").write_text("v:\n  type: label_model\n  model: m\n  input: [{role: user, content: x}]\n"
                                          "  labels: [yes, no]\n  passing_labels: [yes]\n")
    with pytest.raises(spec.GraderError, match=r"YAML reads yes, no, .* as booleans: quote them"):
        spec.load(tmp_path / "labels.yaml")
    with pytest.raises(spec.GraderError, match="two graders are named 'a'"):
        spec.load([{**_check("eq"), "name": "a"}, {**_similar("bleu"), "name": "a"}])


def test_a_test_rows_own_fields_reach_the_grader_as_item_fields_from_a_file_or_a_prepared_split(tmp_path, tokenizer):
    from helpers import compose_cfg, tool_picker_rows, write_jsonl
    from lorakit.core.runs import RunFolder
    from lorakit.evaluation import grading
    from lorakit.evaluation.comparison import test_set
    from lorakit.models.loading import end_of_turn_ids
    from lorakit.stages import prepare

    rows = [{**r, "expected_tool": "weather", "n": i} for i, r in enumerate(tool_picker_rows("test", 4))]
    rows[3] = {"messages": rows[3]["messages"]}  # no fields of its own
    test = write_jsonl(tmp_path / "test.jsonl", rows)
    train = write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 12))
    cfg = compose_cfg(f"data.train_file={train}", f"data.test_file={test}", run_dir=tmp_path / "run")
    prepare.run(cfg, tokenizer, end_of_turn_ids(tokenizer), tmp_path / "run")
    grader = spec.check({"type": "string_check", "name": "s", "input": "{{ item.expected_tool }}-{{ item.n }}",
                         "reference": "{{ item.reference }}", "operation": "eq"})
    for source in (None, RunFolder(tmp_path / "run").split("test")):  # the file as given, the run's split
        held = test_set(cfg, tokenizer, source)
        items = grading.items_of(held, [r["messages"][-1]["content"] for r in held])
        assert [i.get("n") for i in items] == [0, 1, 2, None]
        assert items[0]["reference"] == rows[0]["messages"][-1]["content"]
        graded = grade(grader, items, ["x"] * 4)
        assert [g.error is None for g in graded] == [True, True, True, False]  # the last row has no such field
        assert "expected_tool" in graded[3].error
