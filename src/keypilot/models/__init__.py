"""The KeyPilot model library: importable without the training, data or serving code."""
