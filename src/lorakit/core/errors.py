"""The user's errors: input that the user can fix (a config, a data file, a model name, a key).

Every user-facing error derives from `UserError`, so each command catches this one class and exits 2 with the
message alone, no traceback; anything else is a lorakit bug and keeps its traceback. The message says what is
wrong, where (file:line, the config key) and the fix. The classes that several layers raise live here; the others
live with the code that raises them (DataError in lorakit.data.reading, TemplateError in lorakit.data.template,
ModelNotFoundError in lorakit.models.loading, CandidateError in lorakit.evaluation.candidates, HostedJobError in
lorakit.openai.hosted, SecurityError in lorakit.server.security, OutOfMemory in lorakit.core.oom).
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager


class UserError(Exception):
    """Input the user can fix; the message names what, where and the fix."""


class ConfigError(UserError, ValueError):
    """The configuration (or a command's arguments) is invalid; the message lists every problem and its fix."""


class ApiError(UserError, RuntimeError):
    """An OpenAI-compatible API refused a request or cannot be reached; the message says which and why."""


@contextmanager
def exit_2_on_user_error(log: logging.Logger | None = None):
    """For a command's main(): a UserError ends the process with status 2 and its message alone, logged to `log`
    (a command whose log the user reads: train, compare, serve) or else printed to stderr as `error: ...`."""
    try:
        yield
    except UserError as err:
        if log is None:
            print(f"error: {err}", file=sys.stderr)
        else:
            log.error("%s", err)
        sys.exit(2)
