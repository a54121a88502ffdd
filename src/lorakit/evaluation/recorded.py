"""Answers recorded earlier, as a candidate (`recorded:<file>`): lorakit.migrate's recorded.jsonl, one line per
request with the request as sent (`request.messages`) and the answer's text (`answer`). Each test example takes the
answer recorded for its prompt (its conversation up to the last assistant turn, compared by roles and texts).
"""

from __future__ import annotations

import json
from pathlib import Path

from lorakit.core.messages import prompt_of
from lorakit.evaluation.candidates import CandidateError


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _key(messages: list[dict]) -> str:
    return json.dumps([[m.get("role"), _text(m.get("content")).strip()] for m in messages], ensure_ascii=False)


def answers(path: Path, rows: list[dict]) -> list[str]:
    """The recorded answer to each test row's prompt, in order.

    Raises:
        CandidateError: a line that cannot be read (file:line), or test prompts with no recorded answer.
    """
    recorded = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            recorded[_key(entry["request"]["messages"])] = entry["answer"]
        except (ValueError, KeyError, TypeError) as err:
            raise CandidateError(f"{path}:{n}: not a recorded answer ({err}); each line holds request.messages and "
                                 "answer, as python -m lorakit.migrate writes them") from None
    found = [recorded.get(_key(prompt_of(r["messages"]))) for r in rows]
    missing = [i for i, a in enumerate(found) if a is None]
    if missing:
        raise CandidateError(f"{path}: no answer recorded for {len(missing)} of the {len(rows)} test prompts (the first: "
                             f"test example {missing[0] + 1}); compare on the file the answers were recorded for "
                             "(data.test_file=<the job's validation file, or the --prompts file>), or record them: "
                             "python -m lorakit.migrate --prompts <the test file>")
    return found
