"""Training: the loop, checkpoints, distributed set-up."""
