"""`python -m lorakit.compare` through the real command line, on two tiny adapters of one base."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import python_m, tool_picker_rows, write_jsonl
from helpers.fixtures import KEY, env_without_keys
from lorakit.core.paths import ROOT


def test_compare_base_two_adapters_and_fewshot_from_one_base_load_then_from_the_cache(two_runs):
    tmp = two_runs
    args = ("model=tiny-llama", "candidates=[base,A,B/adapter,fewshot:2]", "eval.max_new_tokens=8")
    out = python_m("lorakit.compare", *args, f"out_dir={tmp / 'cmp'}", cwd=tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp / "cmp" / "compare.json").read_text())
    assert report["n_examples"] == 8  # A's own test split
    assert list(report["candidates"]) == ["base", "A", "B/adapter", "fewshot:2"]
    for metrics in report["candidates"].values():
        for stat in metrics.values():
            assert stat["ci_low"] <= stat["value"] <= stat["ci_high"]
    assert {(t["a"], t["b"]) for t in report["tests"]} == {("base", "A"), ("base", "B/adapter"), ("base", "fewshot:2")}
    em = next(t for t in report["tests"] if t["metric"] == "exact_match")
    assert em["test"] == "McNemar exact" and 0 <= em["p_value"] <= 1
    assert report["generated"] == {"base": 8, "fewshot:2": 8, "A": 8, "B/adapter": 8}
    assert "base model loads: 1" in out.stdout + out.stderr
    assert "## Paired tests" in (tmp / "cmp" / "compare.md").read_text()

    again = python_m("lorakit.compare", *args, f"out_dir={tmp / 'again'}", cwd=tmp)
    assert again.returncode == 0, again.stderr[-3000:]
    cached = json.loads((tmp / "again" / "compare.json").read_text())
    assert cached["generated"] == {"base": 0, "fewshot:2": 0, "A": 0, "B/adapter": 0}
    assert cached["candidates"] == report["candidates"] and "base model loads: 0" in again.stdout + again.stderr


def test_bad_candidates_fail_before_any_generation_with_the_fix(two_runs):
    tmp = two_runs
    out = python_m("lorakit.compare", "model=tiny-llama", "candidates=[base,nowhere/run]", f"out_dir={tmp / 'x'}", cwd=tmp)
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr
    assert ("candidate 'nowhere/run': nowhere/run does not exist; give base, fewshot:K, openai:<model id>, "
            "recorded:<file>, a run folder" in out.stdout + out.stderr)
    # the tiny adapters against the embedded SmolLM2: another base model, refused by name or by shape
    out = python_m("lorakit.compare", "candidates=[base,A]", f"out_dir={tmp / 'y'}", cwd=tmp)
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "candidate 'A' was trained on 'tiny-llama'" in text and "model=..." in text
    assert not (tmp / "y" / "compare.json").exists()


def _tool(text: str) -> str | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value.get("tool") if isinstance(value, dict) else None


GRADERS = """
same_tool:                      # a python grader: the answer calls the reference's tool
  type: python
  source: |
    import json

    def grade(sample, item):
        answer = sample.get("output_json")
        return float(isinstance(answer, dict) and answer.get("tool") == json.loads(item["reference"])["tool"])
mentions_tool:
  type: string_check
  input: "{{ sample.output_text }}"
  reference: '"tool"'
  operation: like
both:
  type: multi
  graders:
    a: {type: string_check, name: a, input: "{{ sample.output_text }}", reference: "{{ item.reference }}", operation: eq}
    b: {type: text_similarity, name: b, input: "{{ sample.output_text }}", reference: "{{ item.reference }}",
        evaluation_metric: rouge_l}
  calculate_output: (a + b) / 2
verdict:                        # the tiny random model as the grading model: its replies are not labels
  type: label_model
  model: tiny-llama
  input: [{role: user, content: "Is this a tool call? {{ sample.output_text }}"}]
  labels: ["yes", "no"]
  passing_labels: ["yes"]
"""


def test_report_html_is_self_contained_with_figures_every_example_and_the_graders(two_runs):
    tmp = two_runs
    (tmp / "graders.yaml").write_text(GRADERS)
    out = python_m("lorakit.compare", "model=tiny-llama", "candidates=[base,A]", "eval.max_new_tokens=8", "logger=wandb",
                   "eval.graders=graders.yaml", f"out_dir={tmp / 'html'}", cwd=tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp / "html" / "compare.json").read_text())
    examples = [json.loads(line) for line in (tmp / "html" / "examples.jsonl").read_text().splitlines()]
    assert report["metrics"][-4:] == ["same_tool", "mentions_tool", "both", "verdict"]
    for name in ("base", "A"):
        answers = [e["answers"][name] for e in examples]
        expected = [float(_tool(a) is not None and _tool(a) == _tool(e["reference"])) for a, e in
                    zip(answers, examples, strict=True)]
        assert [e["scores"][name]["same_tool"] for e in examples] == expected
        assert report["candidates"][name]["same_tool"]["value"] == sum(expected) / len(expected)
        assert [e["scores"][name]["mentions_tool"] for e in examples] == [float('"tool"' in a) for a in answers]
        assert [e["scores"][name]["both"] for e in examples] == pytest.approx(
            [(float(a == e["reference"]) + e["scores"][name]["rouge_l"]) / 2 for a, e in zip(answers, examples,
                                                                                            strict=True)])
        stat = report["candidates"][name]["both"]
        assert stat["ci_low"] <= stat["value"] <= stat["ci_high"]
    assert {t["metric"] for t in report["tests"]} >= {"same_tool", "mentions_tool", "both", "verdict"}
    assert next(t for t in report["tests"] if t["metric"] == "mentions_tool")["test"] == "McNemar exact"
    verdict = report["graders"]["verdict"]
    assert verdict["type"] == "label_model" and verdict["failed"]["A"] > 0  # counted, and scored 0
    assert "the grading model's reply is not one of the labels" in verdict["failures"]["A"][0]["error"]
    assert report["graders"]["same_tool"]["failed"] == {"base": 0, "A": 0}
    assert "| same_tool |" in (tmp / "html" / "compare.md").read_text()
    assert "grader `verdict` (label_model)" in (tmp / "html" / "compare.md").read_text()
    html = (tmp / "html" / "compare.html").read_text()
    assert "same_tool" in html
    assert html.startswith("<!doctype html>") and "<script" not in html and "http" not in html  # opens from disk
    assert html.count('src="data:image/png;base64,') == 2  # metric bars, A's loss curves (no label task here)
    assert html.count("<h3>test.jsonl:") == 8
    assert len(examples) == 8 and set(examples[0]["answers"]) == {"base", "A"}
    assert set(examples[0]["scores"]["A"]) >= {"exact_match", "json_equal"}
    [records] = list((tmp / "html" / "wandb").glob("offline-run-*/run-*.wandb"))  # the tables went to a W&B run
    assert b"same_tool" in records.read_bytes()


def test_judge_runs_both_orders_and_counts_unparseable_replies(two_runs, smollm2_dir):
    """A real local judge (the embedded SmolLM2-135M) grading SmolLM2's own answers with and without 2 shots.
    A model this small rarely answers in the strict format: what it cannot be parsed is counted, never scored."""
    tmp = two_runs
    out = python_m("lorakit.compare", "candidates=[base,fewshot:2]", "data.test_file=test.jsonl",
              "data.train_file=train.jsonl", "eval.max_examples=4", "eval.max_new_tokens=16",
              "eval.judge.model=smollm2-135m", "eval.judge.max_new_tokens=8", "eval.margin=0.1",
              f"out_dir={tmp / 'judge'}", cwd=tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp / "judge" / "compare.json").read_text())
    judge = result["judge"]
    examples = [json.loads(line) for line in (tmp / "judge" / "examples.jsonl").read_text().splitlines()]
    pair = judge["pairwise"][0]
    assert (pair["a"], pair["b"]) == ("base", "fewshot:2")
    assert pair["win"] + pair["tie"] + pair["loss"] + pair["unparseable"] == 4
    differing = sum(e["answers"]["base"] != e["answers"]["fewshot:2"] for e in examples)
    assert pair["identical"] == 4 - differing
    assert judge["calls"] == 2 * 4 + 2 * differing  # pointwise: each answer once; pairwise: both orders
    [by_judge] = [v for v in result["non_inferiority"] if v["metric"] == "judge_win_rate"]  # parity is 0.5
    assert by_judge["lower_bound"] == pytest.approx(pair["win_rate"]["ci_low"] - 0.5)
    assert by_judge["verdict"] == ("non-inferior" if pair["win_rate"]["ci_low"] > 0.4 else
                                   "inferior" if pair["win_rate"]["ci_high"] < 0.4 else "inconclusive")
    for name in ("base", "fewshot:2"):
        point = judge["pointwise"][name]
        assert point["unparseable"] == sum(e["judge_score"][name] is None for e in examples)
        assert point["n_scored"] + point["unparseable"] == 4
        assert sum(point["distribution"].values()) == point["n_scored"]
    assert "## LLM judge" in (tmp / "judge" / "compare.md").read_text()


def test_an_unknown_judge_fails_before_generation(two_runs):
    tmp = two_runs
    out = python_m("lorakit.compare", "model=tiny-llama", "candidates=[base,A]", "eval.judge.model=no-such-judge",
              f"out_dir={tmp / 'nojudge'}", cwd=tmp)
    text = out.stdout + out.stderr
    assert out.returncode == 2 and "Traceback" not in text
    assert "eval.judge.model='no-such-judge': no such folder and no conf/model/no-such-judge.yaml" in text
    assert "generating" not in text and not (tmp / "nojudge" / "compare.json").exists()
    # the pipeline checks it with the configuration, before preparing or training anything
    out = python_m("train", "model=tiny-llama", "data.train_file=train.jsonl", "eval.judge.model=no-such-judge",
              f"hydra.run.dir={tmp / 'nojudge-run'}", cwd=tmp)
    text = out.stdout + out.stderr
    assert out.returncode == 2 and "Traceback" not in text and "invalid configuration" in text
    assert "eval.judge.model='no-such-judge'" in text and not (tmp / "nojudge-run" / "data").exists()


def test_a_test_set_of_another_task_is_refused_before_generation(two_runs):
    tmp = two_runs
    other = write_jsonl(tmp / "dates.jsonl", [json.loads(line) for line in
                                              (ROOT / "data" / "dates" / "test.jsonl").read_text().splitlines()[:8]])
    out = python_m("lorakit.compare", "model=tiny-llama", "candidates=[base,A]", f"data.test_file={other}",
              f"out_dir={tmp / 'other'}", cwd=tmp)
    text = out.stdout + out.stderr
    assert out.returncode == 2 and "Traceback" not in text
    assert f"the test set {other} does not look like the task of candidate 'A'" in text
    assert "training answers are JSON objects, test answers free text" in text and "generating" not in text


def test_compare_takes_api_candidates_and_an_api_judge(server, tuned, tmp_path):
    test = write_jsonl(tmp_path / "test.jsonl", tool_picker_rows("test", 6))
    model = tuned[1].fine_tuned_model
    done = subprocess.run(
        [sys.executable, "-m", "lorakit.compare", f"candidates=[openai:tiny-llama,openai:{model}]", "model=tiny-llama",
         f"data.test_file={test}", f"eval.openai.base_url={server.url}/v1", "eval.openai.api_key_env=MY_SERVER_KEY",
         "eval.judge.model=openai:tiny-llama", f"out_dir={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'out'}"],
        capture_output=True, text=True, env=env_without_keys(MY_SERVER_KEY=KEY), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert list(result["candidates"]) == ["openai:tiny-llama", f"openai:{model}"]
    assert result["judge"]["model"] == "openai:tiny-llama" and result["judge"]["calls"] > 0
    refused = subprocess.run(
        [sys.executable, "-m", "lorakit.compare", "candidates=[openai:gpt-4o-mini]", "model=tiny-llama",
         f"data.test_file={test}", f"hydra.run.dir={tmp_path / 'refused'}"],
        capture_output=True, text=True, env=env_without_keys(), timeout=300)
    assert refused.returncode == 2 and "set the environment variable OPENAI_API_KEY" in refused.stdout + refused.stderr
