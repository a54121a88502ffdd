"""Sweeps: a job's identity, results and time estimates (jobs), prepared data shared by a sweep's jobs (reuse), the
leaderboard (leaderboard) and one GPU per side-by-side job (gpus). Imports data, openai (pricing), training and
core."""
