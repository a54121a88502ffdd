"""OpenAI, both ways: the API client and answers from any OpenAI-compatible endpoint (api), OpenAI's record formats
(formats), fine-tuning prices (pricing), training through the fine-tuning API (hosted, backend=openai's train stage), and
an account brought home (account: its jobs and files; recording: its tuned models' answers; lorakit.migrate).
Imports core only."""
