"""Inference: one base model with its adapters by name, batched greedy generation and sampling (engine), tokens to
text with stop strings (streaming). Used by evaluation, the server and the terminal chat. Imports models and core."""
