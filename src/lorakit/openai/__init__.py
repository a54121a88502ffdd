"""OpenAI, both ways: the API client and answers from any OpenAI-compatible endpoint (api), OpenAI's record formats
(formats), fine-tuning prices (pricing) and training through the fine-tuning API (hosted, backend=openai's train
stage). Imports core only."""
