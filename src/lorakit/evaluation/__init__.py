"""Evaluation: candidates (base, adapters, few-shot, API models) answering one test set (comparison), cached
(cache), scored per example (metrics, scoring) with intervals and paired tests (stats), an LLM judge (judge) and the
reports (report, html_report, plots). Imports data, inference, openai, models and core."""
