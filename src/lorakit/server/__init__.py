"""Server: the OpenAI-compatible HTTP API of python -m lorakit.serve: the app and its guard (app, security, errors,
requests), served models (registry), batched decoding (batching), chat, files and fine-tuning jobs (chat_api,
files_api, jobs_api, jobs, store). Imports the engines and core, never a command or a stage."""
