"""Data: every input format read into chat examples (formats, reading), each example checked (checks, task_match),
split (splits), rendered with the model's chat template (template) and tokenized with loss masks (encoding); the
data report (data_report); training files built in Python (dataset). Imports training (the plan), openai (formats,
pricing) and core."""
