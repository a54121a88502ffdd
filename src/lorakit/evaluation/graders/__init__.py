"""Graders, in OpenAI's grader JSON: string_check, text_similarity, python, score_model, label_model and multi,
with `{{ item.* }}` / `{{ sample.* }}` templates (templating). spec reads and validates them, run grades a batch of
answers, text / python_grader / model_graders / formula hold each kind's scoring. Shared by compare (a metric
each), the reinforcement method (the reward) and the server's graders API. Imports core only; a model grader's
model is the caller's (run.Ask).
"""
