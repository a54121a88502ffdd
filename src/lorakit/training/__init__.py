"""Training: the SFTTrainer of a run with LoRA (trainer), its loss override (loss), padding-free attention
(attention), whole checkpoints and resume (resume) and the settings decided from the data's size (plan). Imports
models and core."""
