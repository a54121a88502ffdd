"""Training renders equal inference renders on the target families' real chat templates.

For every trained reply, the tokens before it are exactly the tokens of
`apply_chat_template(messages_before_it, add_generation_prompt=True)`, and the trained tokens are the reply and
its end-of-turn token: on Llama 3.1 (Meta's tokenizer, TRL's copy of the template), Mistral v0.3 (Mistral's v3
tokenizer; the system prompt sits in the last user turn), Qwen2.5 (TRL's template) and SmolLM2. And every chat
template TRL ships either trains each reply after its inference prompt or rejects the conversation.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from helpers import compose_cfg, train_cli, write_jsonl
from lorakit.data.encoding import IGNORE, encode
from lorakit.data.template import CONVERSATION, TURN, TemplateError, render, trained_turns, training_rendering, verify_saved
from lorakit.stages import prepare

SYSTEM = "You are the support assistant of the Zorblax ticket desk. Answer in one short sentence."
QA = [("How do I reset my password?", "Open Settings, then Security, then Reset."),
      ("Can I keep my old tickets?", "Yes, they stay in your archive."),
      ("Who sees my tickets?", "Only you and the desk staff."),
      ("Is there a mobile app?", "Yes, for Android and iOS.")]
FAMILIES = ("llama-3.1", "mistral-v0.3", "qwen2.5", "smollm2")


def conversation(turns: int, system: bool, start: int = 0, **reply) -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM}] if system else []
    for k in range(start, start + turns):
        question, answer = QA[k % len(QA)]
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer, **reply}]
    return messages


def with_untrained_middle(messages: list[dict]) -> list[dict]:
    replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    return [dict(m, weight=0) if i == replies[len(replies) // 2] else m for i, m in enumerate(messages)]


CONVERSATIONS = {
    "one turn": conversation(1, system=False),
    "one turn, system": conversation(1, system=True),
    "three turns": conversation(3, system=False),
    "three turns, system": conversation(3, system=True),
    "three turns, system, weight 0 in the middle": with_untrained_middle(conversation(3, system=True)),
    "reply starting with two newlines": [{"role": "user", "content": "Say hi."},
                                      {"role": "assistant", "content": "\n\nHi there."}],
}


def trained_runs(ids: list[int], labels: list[int]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive trained positions."""
    runs, start = [], None
    for t, lab in enumerate([*labels, IGNORE]):
        if lab != IGNORE and start is None:
            start = t
        elif lab == IGNORE and start is not None:
            runs.append((start, t))
            start = None
    return runs


def encoded(tokenizer, eot, messages) -> dict:
    [row] = encode(tokenizer, [(messages, None)], eot)
    assert not row["error"], row["error"]
    return row


@pytest.mark.parametrize("name", list(CONVERSATIONS))
@pytest.mark.parametrize("family", FAMILIES)
def test_each_reply_follows_exactly_its_inference_prompt(families, family, name):
    _, tokenizer, eot = families[family]
    messages = CONVERSATIONS[name]
    row = encoded(tokenizer, eot, messages)
    runs = [(ids, labels, a, b) for ids, labels in zip(row["input_ids"], row["labels"], strict=True)
            for a, b in trained_runs(ids, labels)]
    turns = trained_turns(messages)
    assert len(runs) == len(turns)  # one trained run per weighted reply, nothing else trained
    for (ids, labels, a, b), i in zip(runs, turns, strict=True):
        prompt = tokenizer.apply_chat_template(messages[:i], add_generation_prompt=True, tokenize=True,
                                               return_dict=False)
        assert ids[:a] == prompt, f"turn {i}: the tokens before the reply are not the inference prompt"
        assert labels[a:b] == ids[a:b]
        assert ids[b - 1] in eot and not set(ids[a:b - 1]) & eot  # the reply, then exactly one end of turn
        assert tokenizer.decode(ids[a:b - 1]).strip() == messages[i]["content"].strip()
    if name.endswith("system"):  # the system prompt is in every training sequence
        assert all(SYSTEM in tokenizer.decode(ids) for ids in row["input_ids"])


@pytest.mark.parametrize(("family", "with_system", "without_system"), [
    ("llama-3.1", CONVERSATION, CONVERSATION), ("qwen2.5", CONVERSATION, CONVERSATION),
    ("smollm2", CONVERSATION, CONVERSATION), ("mistral-v0.3", TURN, CONVERSATION)])
def test_prefix_stable_templates_train_one_sequence_per_conversation(families, family, with_system, without_system):
    _, tokenizer, eot = families[family]
    row = encoded(tokenizer, eot, CONVERSATIONS["three turns, system"])
    assert row["mode"] == with_system and len(row["input_ids"]) == (1 if with_system == CONVERSATION else 3)
    assert encoded(tokenizer, eot, CONVERSATIONS["three turns"])["mode"] == without_system


def test_a_prompt_and_reply_that_tokenize_together_are_trained_apart(families):
    """ChatML ends the prompt with a newline; a reply that starts with two merges the three into two other tokens."""
    _, tokenizer, eot = families["smollm2"]
    messages = CONVERSATIONS["reply starting with two newlines"]
    whole = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
    prompt = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=True, return_dict=False)
    assert whole[:len(prompt)] != prompt, "the tokenizer no longer merges them, so this test would prove nothing"
    assert encoded(tokenizer, eot, messages)["mode"] == TURN


@pytest.mark.parametrize("family", FAMILIES)
def test_the_saved_template_check_holds_and_catches_a_changed_template(tmp_path, families, family):
    _, tokenizer, _ = families[family]
    conversations = [(messages, None) for messages in CONVERSATIONS.values()]
    tokenizer.save_pretrained(tmp_path / "adapter")  # what the train stage saves beside the adapter
    assert len(verify_saved(tokenizer, tmp_path / "adapter", conversations)) == 64
    moved = copy.copy(tokenizer)
    if family == "mistral-v0.3":  # the system prompt in the first user turn, as earlier Mistral templates had it
        moved.chat_template = tokenizer.chat_template.replace("loop.last and system_message", "loop.first and "
                                                              "system_message")
    else:
        moved.chat_template = "{{- ' ' }}" + tokenizer.chat_template
    assert moved.chat_template != tokenizer.chat_template
    moved.save_pretrained(tmp_path / "moved")
    with pytest.raises(TemplateError, match="renders training example . differently"):
        verify_saved(tokenizer, tmp_path / "moved", conversations)


def data_file(tmp_path, name: str, n: int) -> str:
    """n records, each with the system prompt; every second one has three turns."""
    rows = [{"messages": conversation(3 if k % 2 else 1, system=True, start=k)} for k in range(n)]
    for k, row in enumerate(rows):  # distinct conversations (no duplicates to drop)
        row["messages"][1]["content"] += f" (ticket {name}-{k})"
    return str(write_jsonl(tmp_path / name, rows))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_file_where_every_record_has_a_system_prompt_is_used_whole(tmp_path, families, family):
    folder, tokenizer, eot = families[family]
    from datasets import load_from_disk

    cfg = compose_cfg(f"model.name_or_path={folder}", f"data.train_file={data_file(tmp_path, 'train.jsonl', 12)}",
                      f"data.test_file={data_file(tmp_path, 'test.jsonl', 2)}", "data.val_fraction=0",
                      run_dir=tmp_path / "run")
    report = prepare.run(cfg, tokenizer, eot, tmp_path / "run")
    assert report["accounting"]["used"] == {"train": 12, "validation": 0, "test": 2}
    assert report["accounting"]["dropped"] == 0 and not report["findings"]
    rows = load_from_disk(str(tmp_path / "run" / "data" / "train"))
    replies = {m["content"] for line in (tmp_path / "train.jsonl").read_text().splitlines()
               for m in json.loads(line)["messages"] if m["role"] == "assistant"}
    for ids, labels in zip(rows["input_ids"], rows["labels"], strict=True):
        assert SYSTEM in tokenizer.decode(ids)
        for a, b in trained_runs(ids, labels):
            assert tokenizer.decode(ids[a:b - 1]).strip() in replies and ids[b - 1] in eot
    rendering = report["template"]["rendering"]
    markdown = (tmp_path / "run" / "data_report.md").read_text()
    if family == "mistral-v0.3":  # 6 one-turn records + 6 three-turn records, one sequence per turn
        assert rendering[TURN] == 12 and rendering["sequences"] == 6 + 6 * 3 == len(rows)
        assert rendering["extra_tokens_per_epoch"] > 0
        assert f"{rendering['extra_tokens_per_epoch']:,} extra tokens per epoch" in markdown
        # a hosted service bills each conversation once, not each turn's copy of it
        assert report["openai_cost"]["billed_tokens"] == int((report["tokens"]["per_epoch"]
                                                              - rendering["extra_tokens_per_epoch"]) * report["tokens"]["epochs"])
    else:
        assert rendering == {CONVERSATION: 12, TURN: 0, "sequences": 12, "extra_tokens_per_epoch": 0}
        assert "12 training example(s) as one sequence each" in markdown


def test_a_conversation_the_template_rejects_is_dropped_by_line(tmp_path, families):
    folder, tokenizer, eot = families["mistral-v0.3"]
    rows = [{"messages": conversation(1, system=True, start=k)} for k in range(4)]
    rows[2]["messages"].insert(2, {"role": "user", "content": "Quickly, please."})  # two user turns in a row
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    cfg = compose_cfg(f"model.name_or_path={folder}", f"data.train_file={train}", "data.test_file=null",
                      "data.test_fraction=0", "data.val_fraction=0", run_dir=tmp_path / "run")
    report = prepare.run(cfg, tokenizer, eot, tmp_path / "run")
    assert report["accounting"]["used"]["train"] == 3
    [finding] = report["findings"]
    assert (finding["line"], finding["category"]) == (3, "role_order")
    assert "conversation roles must alternate" in finding["message"] and "reorder or merge" in finding["message"]

    every = write_jsonl(tmp_path / "every.jsonl", [rows[2]] * 1 + [
        {"messages": [{"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Hi."},
                      {"role": "assistant", "content": "How can I help?"}]}])
    cfg = compose_cfg(f"model.name_or_path={folder}", f"data.train_file={every}", "data.test_file=null",
                      "data.test_fraction=0", "data.val_fraction=0", run_dir=tmp_path / "every")
    with pytest.raises(TemplateError, match=r"renders none of the 2 examples(.|\n)*every.jsonl:1: role_order"):
        prepare.run(cfg, tokenizer, eot, tmp_path / "every")


def trl_templates() -> dict[str, Path]:
    import trl

    folder = Path(trl.__file__).parent / "chat_templates"
    return {p.stem: p for p in sorted(folder.glob("*.jinja")) if not p.stem.endswith("_training")}


# The end-of-turn texts of the families TRL ships templates for (each model's tokenizer and generation config
# name them; here the templates are rendered with SmolLM2's tokenizer, so they are listed).
ENDS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<|endoftext|>", "<end_of_turn>", "<turn|>", "<|return|>",
        "<|call|>", "<|eot|>", "<｜end▁of▁sentence｜>", "<end_of_utterance>", "<|END_OF_TURN_TOKEN|>", "</s>")
# What the templates do with the conversations above, read from their text:
REJECTS_SYSTEM = {"gemma"}  # raises "System role not supported"
PREFILLS_THINKING = {"deepseek_r1_distill", "deepseekv3", "nemotron_3_5_lightning", "nemotron_3_nano",
                     "nemotron_3_super", "nemotron_3_ultra"}  # the generation prompt opens '<think>'; replies do not
CONTENT_AS_PARTS = {"idefics3", "llava_next", "smolvlm"}  # vision-language: render only list-of-parts content
NEXT_HEADER_ENDS = {"glm4moe"}  # a reply ends when the model writes the next turn's <|user|>: nothing ends it
LAST_TURN_DIFFERS = {"gptoss", "qwen3", "qwen3_5_nothink", "qwen3_5_think", "qwen3_6"}  # final reply: think/return


@pytest.mark.parametrize("name", list(trl_templates()))
def test_every_template_trl_ships_trains_each_reply_after_its_inference_prompt(tokenizer, name):
    chat = copy.copy(tokenizer)
    chat.chat_template = trl_templates()[name].read_text()
    for title, messages in CONVERSATIONS.items():
        has_system = messages[0]["role"] == "system"
        if name in PREFILLS_THINKING | CONTENT_AS_PARTS or (name in REJECTS_SYSTEM and has_system):
            with pytest.raises(Exception, match="<think>|content as a list|no attribute 'text'|System role"):
                training_rendering(chat, messages, None, ENDS)
            continue
        rendering = training_rendering(chat, messages, None, ENDS)
        multi = len(trained_turns(messages)) > 1
        assert rendering.mode == (TURN if multi and name in LAST_TURN_DIFFERS else CONVERSATION), title
        spans = [(text, span) for text, spans in rendering.sequences for span in spans]
        for (text, (a, b)), i in zip(spans, trained_turns(messages), strict=True):
            assert text[:a] == render(chat, messages[:i], add_generation_prompt=True), (title, i)
            assert messages[i]["content"].strip() in text[a:b], (title, i, text[a:b])
            # (the prepare stage stops on a reply without an end of turn: the model would never learn to stop)
            assert text[a:b].endswith(ENDS) != (name in NEXT_HEADER_ENDS), (title, i, text[a:b])


@pytest.mark.parametrize(("model", "family"), [("mistral-7b", "mistral-v0.3"), ("llama-3.1-8b", "llama-3.1")])
def test_the_target_model_configs_run_end_to_end_on_a_tiny_model_of_their_family(tmp_path, families, model, family):
    """`model=mistral-7b` / `model=llama-3.1-8b` with a local folder, as a user points them at downloaded weights:
    prepare, train, evaluate, and the template saved with the adapter renders every training example as trained."""

    folder = families[family][0]
    run = tmp_path / "run"
    out = train_cli(f"model={model}", f"model.name_or_path={folder}", "quant=none",
              f"data.train_file={data_file(tmp_path, 'train.jsonl', 8)}",
              f"data.test_file={data_file(tmp_path, 'test.jsonl', 2)}", "data.val_fraction=0", "+train.max_steps=2",
              "eval.max_new_tokens=4", f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "renders all 8 training examples as in training" in log
    assert set(json.loads((run / "metrics.json").read_text())) == {"base", "tuned"}
    assert len((run / "predictions.jsonl").read_text().splitlines()) == 2
    rendering = json.loads((run / "data_report.json").read_text())["template"]["rendering"]
    assert rendering[TURN] == (8 if family == "mistral-v0.3" else 0)
    saved = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == folder
