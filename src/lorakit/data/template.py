"""The chat template: render conversations for training exactly as they are rendered at inference.

The rule: for every trained assistant turn, the text before it is exactly what
`apply_chat_template(messages_before_it, add_generation_prompt=True)` gives at inference, and the trained text is
the reply and its end-of-turn text. Two renderings satisfy it:
- one sequence per conversation, where the template is prefix-stable (Llama 3.x, Qwen2.5, ChatML, SmolLM2): the
  rendering of the whole conversation starts with the inference prompt of each trained turn and with the rendering
  that ends at that turn;
- one sequence per trained turn, rendered as at inference, where it is not. Mistral v0.3 puts the system prompt
  into the last user message only when that message ends the conversation, so a rendering that ends with a reply
  holds no system text at all; reasoning templates (Qwen3, DeepSeek-R1) drop earlier turns' reasoning. Each turn
  then costs a sequence of its own (data_report.md says how many extra tokens).
Tokenization and loss masks are in lorakit.data.encoding.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from lorakit.core.errors import UserError
from lorakit.core.messages import last_reply

CONVERSATION, TURN = "conversation", "turn"  # the two renderings (see the module docstring)


class TemplateError(UserError, ValueError):
    """The model's chat template cannot be used to locate assistant tokens, or was not saved as trained."""


@dataclass
class Rendering:
    """The training text of one conversation: sequences of (text, trained character spans).

    For every span (start, end), text[:start] is the inference prompt of that turn and text[start:end] its reply
    with the template's end-of-turn text.
    """

    mode: str  # CONVERSATION (one sequence) or TURN (one sequence per trained turn)
    sequences: list[tuple[str, list[tuple[int, int]]]]


def template_sha256(tokenizer) -> str:
    """Hash of the chat template text: the same hash means the same rendering."""
    return hashlib.sha256((tokenizer.chat_template or "").encode()).hexdigest()


def supports_tools(tokenizer) -> bool:
    """Whether the chat template renders OpenAI-style tool calls itself."""
    return "tool_calls" in (tokenizer.chat_template or "")


def chat_view(messages: list[dict], tools_in_template: bool) -> list[dict]:
    """The messages as the template gets them: without tool support, tool calls become JSON text in the reply."""
    if tools_in_template:
        return messages
    out = []
    for msg in messages:
        if msg.get("tool_calls"):
            calls = "\n".join(json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                                         ensure_ascii=False) for c in msg["tool_calls"])
            msg = {**{k: v for k, v in msg.items() if k != "tool_calls"},
                   "content": f"{msg['content']}\n{calls}" if msg["content"] else calls}
        out.append(msg)
    return out


def render(tokenizer, messages: list[dict], tools: list | None = None, **kwargs) -> str:
    return tokenizer.apply_chat_template(chat_view(messages, supports_tools(tokenizer)), tools=tools, tokenize=False,
                                         **kwargs)


def rejection(err: Exception) -> tuple[str, str]:
    """(category, message) for a conversation the chat template refused to render or lorakit could not split."""
    if isinstance(err, TemplateError):
        return "template_error", str(err)
    text = str(err)
    category = "role_order" if any(w in text.lower() for w in ("role", "alternat")) else "template_error"
    return category, (f"the model's chat template rejects this conversation: {text!r}; reorder or merge the "
                      "messages so the template accepts them (e.g. Mistral: user and assistant alternate, starting "
                      "with user)")


def trained_turns(messages: list[dict]) -> list[int]:
    """Indices of the assistant turns to train (weight 0 keeps a turn as context only)."""
    return [i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("weight", 1) != 0]


def training_rendering(tokenizer, messages: list[dict], tools: list | None = None,
                       ends: tuple[str, ...] = ()) -> Rendering:
    """Render a conversation for training: one sequence where the template is prefix-stable, else one per turn.

    Args:
        ends: the text of the end-of-turn tokens; a reply's trained text ends with the first of them (what a
            template appends after it, such as an end-of-conversation token, is not generated at inference).

    Raises:
        TemplateError: when the reply of a turn cannot be separated from its prompt (the conversation is dropped).
        Exception: the template's own exception when it rejects the conversation.
    """
    full = render(tokenizer, messages, tools)
    spans = []
    for i in trained_turns(messages):
        prompt = render(tokenizer, messages[:i], tools, add_generation_prompt=True)
        upto = full if i == len(messages) - 1 else render(tokenizer, messages[: i + 1], tools)
        end = reply_end(upto, len(prompt), ends)
        if not (upto.startswith(prompt) and end > len(prompt) and full.startswith(upto[:end])):
            return per_turn(tokenizer, messages, tools, ends)
        _check_reply(full[len(prompt):end], messages, i, ends)
        spans.append((len(prompt), end))
    return Rendering(CONVERSATION, [(full, spans)])


def per_turn(tokenizer, messages: list[dict], tools: list | None = None, ends: tuple[str, ...] = ()) -> Rendering:
    """One sequence per trained turn: its inference prompt followed by its reply, as the template renders them."""
    sequences = []
    for i in trained_turns(messages):
        prompt = render(tokenizer, messages[:i], tools, add_generation_prompt=True)
        text = prompt + _reply_text(tokenizer, messages, i, tools, prompt)
        end = reply_end(text, len(prompt), ends)
        _check_reply(text[len(prompt):end], messages, i, ends)
        sequences.append((text, [(len(prompt), end)]))
    return Rendering(TURN, sequences)


def reply_end(text: str, start: int, ends: tuple[str, ...]) -> int:
    """Where a reply that starts at `start` ends: after the first end-of-turn text, else at the end of `text`."""
    found = [at + len(e) for e in ends if e and (at := text.find(e, start)) >= 0]
    return min(found, default=len(text))


def _check_reply(rendered: str, messages: list[dict], i: int, ends: tuple[str, ...]) -> None:
    """A reply with text must render as more than its end of turn (a template may ignore string content)."""
    for end in ends:
        rendered = rendered.replace(end, "")
    content = messages[i].get("content")
    if not rendered.strip() and isinstance(content, str) and content.strip():
        raise TemplateError(f"the chat template renders no text for assistant message {i + 1}, only its end of turn "
                            "(vision-language templates take content as a list of parts); use the text model's template")


def _reply_text(tokenizer, messages: list[dict], i: int, tools: list | None, prompt: str) -> str:
    """The text the template writes for assistant turn i after its generation prompt (the reply, end of turn)."""
    upto = render(tokenizer, messages[: i + 1], tools)
    if upto.startswith(prompt):
        return upto[len(prompt):]
    # The prompt changes when a reply follows it (Mistral v0.3: the system prompt sits in the last user turn only
    # while that turn ends the conversation). Without system messages the template places the reply right after
    # the generation prompt; that reply text must also end the real rendering.
    rest = [m for m in messages[: i + 1] if m["role"] != "system"]
    if len(rest) > 1:
        bare_prompt = render(tokenizer, rest[:-1], tools, add_generation_prompt=True)
        bare = render(tokenizer, rest, tools)
        if bare.startswith(bare_prompt) and upto.endswith(bare[len(bare_prompt):]):
            return bare[len(bare_prompt):]
    raise TemplateError(
        f"the chat template's rendering of assistant message {i + 1} does not start with its inference prompt "
        f"(the prompt ends {prompt[-40:]!r}; with the reply the template writes "
        f"{upto[max(0, len(prompt) - 40):len(prompt) + 20]!r}), so the reply cannot be trained as it is prompted at "
        "inference: a reasoning template that starts the reply with '<think>' needs replies with their reasoning, "
        "or a template without the prefill; otherwise use a template that renders each reply after its generation "
        "prompt")


def prompt_and_reference(tokenizer, messages: list[dict], tools: list | None = None) -> tuple[str, str]:
    """Split a test conversation at its last assistant turn: (rendered prompt, reference reply); a conversation
    without one (a reinforcement task, ending in the user turn to answer) is all prompt, its reference ""."""
    last = last_reply(messages)
    if last is None:
        return render(tokenizer, messages, tools, add_generation_prompt=True), ""
    reference = chat_view(messages[last:last + 1], supports_tools(tokenizer))[0]["content"]
    return render(tokenizer, messages[:last], tools, add_generation_prompt=True), reference


def verify_saved(tokenizer, saved_dir: Path, conversations: list[tuple[list[dict], list | None]]) -> str:
    """Check that the tokenizer saved beside an adapter renders every conversation as the training one did.

    Returns:
        the template's sha256.

    Raises:
        TemplateError: naming the first conversation rendered differently.
    """
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(str(saved_dir))
    for n, (messages, tools) in enumerate(conversations):
        if _texts(saved, messages, tools) != _texts(tokenizer, messages, tools):
            raise TemplateError(f"{saved_dir}: the saved chat template renders training example {n} differently "
                                "from the template it was trained with; inference would not match training. Save "
                                "the training tokenizer with the adapter (tokenizer.save_pretrained)")
    sha = template_sha256(saved)
    if sha != template_sha256(tokenizer):
        raise TemplateError(f"{saved_dir}: the saved chat template differs from the training one")
    return sha


def _texts(tokenizer, messages: list[dict], tools: list | None) -> list[str] | str:
    """Every text training renders of a conversation (whole, and turn by turn), or the template's rejection."""
    try:
        return [render(tokenizer, messages, tools)] + [t for t, _ in per_turn(tokenizer, messages, tools).sequences]
    except Exception as err:  # noqa: BLE001 - a rejection is compared like a rendering
        return f"{type(err).__name__}: {err}"
