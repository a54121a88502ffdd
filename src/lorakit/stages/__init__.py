"""Stages: the pipeline in order (pipeline) and each stage it runs: prepare, train, evaluate (merge and hosted
training are one call each into models.merge and openai.hosted); the run's logger (loggers). Imports config and the
engines below it."""
