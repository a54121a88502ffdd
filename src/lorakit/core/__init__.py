"""Core: what every layer shares and that knows nothing of models or stages: the user-error base (errors), the run
folder's layout and JSONL files (runs), chat-message helpers (messages), answers as JSON, label or text (answers),
out-of-memory advice (oom), the process layout of a multi-process run (distributed), where the repository's
files are (paths), and the sandbox code a user sends runs in (sandbox, with the whole tree's limits in cgroups).
Imports nothing else of lorakit."""
