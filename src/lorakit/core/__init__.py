"""Core: what every layer shares and that knows nothing of models or stages: the user-error base (errors), the run
folder's layout and JSONL files (runs), chat-message helpers (messages), answers as JSON, label or text (answers),
out-of-memory advice (oom), the process layout of a multi-process run (distributed) and where the repository's
files are (paths). Imports nothing else of lorakit."""
