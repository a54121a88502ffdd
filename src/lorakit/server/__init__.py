"""Server: the OpenAI-compatible HTTP API of python -m lorakit.serve: the app and its guard (app, security,
api_errors, requests), served models (registry), chat, files and fine-tuning jobs (chat_api, files_api, jobs_api,
job_runner, store). Decoding is the engines' (lorakit.inference.scheduler). Imports the engines and core, never a
command or a stage."""
