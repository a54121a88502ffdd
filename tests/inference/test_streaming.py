"""Token streams to text: deltas add up to the final answer; stop strings, end of turn and token limits end it."""

from __future__ import annotations

import pytest

from lorakit.inference.streaming import TextStream


def _run(tokenizer, text: str, **kwargs) -> tuple[list[str], TextStream]:
    stream = TextStream(tokenizer, eot_ids={tokenizer.eos_token_id}, **{"max_tokens": 1000, **kwargs})
    deltas = [stream.add(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    deltas.append(stream.finish())
    return deltas, stream


@pytest.mark.parametrize("text", ["Hello, world! 12 + 30 = 42.", "Crème brûlée → 寿司 🍣 done", '{"tool": "timer"}'])
def test_deltas_add_up_to_the_text_and_never_split_a_character(tokenizer, text):
    deltas, stream = _run(tokenizer, text)
    assert "".join(deltas) == stream.text == text and stream.finish_reason == "length"
    assert all("\ufffd" not in d for d in deltas)


def test_a_stop_string_ends_the_text_before_it_and_is_never_streamed(tokenizer):
    deltas, stream = _run(tokenizer, "alpha beta STOP gamma", stop=["STOP", "zzz"])
    assert stream.text == "alpha beta " and stream.finish_reason == "stop"
    assert "".join(deltas) == "alpha beta " and not any("S" in d for d in deltas)


def test_end_of_turn_and_the_token_limit_end_the_answer(tokenizer):
    ids = tokenizer("one two three four", add_special_tokens=False)["input_ids"]
    stream = TextStream(tokenizer, eot_ids={tokenizer.eos_token_id}, max_tokens=100)
    for t in [*ids[:2], tokenizer.eos_token_id, *ids[2:]]:
        stream.add(t)
    assert stream.text == tokenizer.decode(ids[:2]) and stream.finish_reason == "stop"
    stream = TextStream(tokenizer, eot_ids={tokenizer.eos_token_id}, max_tokens=2)
    for t in ids:
        stream.add(t)
    assert stream.tokens == ids[:2] and stream.finish_reason == "length"


def test_a_model_config_file_of_the_global_package_gives_its_model_section():
    from lorakit.models.loading import ModelNotFoundError, model_spec

    assert model_spec("llama-3.1-8b").name_or_path == "meta-llama/Llama-3.1-8B-Instruct"
    assert model_spec("smollm2-135m").gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(ModelNotFoundError, match="--model='nope'"):
        model_spec("nope", setting="--model")


def test_an_answer_ended_inside_a_character_keeps_what_was_decoded(tokenizer):
    ids = tokenizer("寿司🍣", add_special_tokens=False)["input_ids"]
    for n in range(1, len(ids)):
        whole = tokenizer.decode(ids[:n], skip_special_tokens=True)
        for end in ("length", "eot"):
            stream = TextStream(tokenizer, eot_ids={tokenizer.eos_token_id}, max_tokens=n if end == "length" else 100)
            deltas = [stream.add(t) for t in ids[:n]]
            if end == "eot":
                deltas.append(stream.add(tokenizer.eos_token_id))
            deltas.append(stream.finish())
            assert stream.text == whole and "".join(deltas) == whole, (n, end)
