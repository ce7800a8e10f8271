"""What a run writes to disk: run folders, checkpoints, metric logs, best models."""
