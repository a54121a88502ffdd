"""`python -m lorakit.chat` with a served job's adapter: tokens streamed, /reset, /exit."""

from __future__ import annotations

import subprocess
import sys

from helpers.fixtures import env_without_keys


def test_terminal_chat_streams_the_adapters_answer_and_resets(server, tuned):
    job = tuned[1]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Set a timer for 5 minutes"}]
    expected = server.client().chat.completions.create(model=job.fine_tuned_model, messages=messages, max_tokens=8,
                                                       temperature=0).choices[0].message.content
    done = subprocess.run(
        [sys.executable, "-m", "lorakit.chat", str(server.data_dir / "jobs" / job.id), "--system", "Be brief.",
         "--temperature", "0", "--max-tokens", "8"],
        input="Set a timer for 5 minutes\n/reset\nSet a timer for 5 minutes\n/exit\n", capture_output=True, text=True,
        env=env_without_keys(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    replies = [part.split("\nyou> ")[0] for part in done.stdout.split("assistant> ")[1:]]
    assert replies == [expected, expected]  # the same answer as the server's; after /reset, the same again
    assert "(conversation reset)" in done.stdout
