"""Evaluation: metrics, baselines, keystroke simulation, report."""
