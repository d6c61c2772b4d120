"""KeyPilot."""
