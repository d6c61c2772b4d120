"""Serving: the HTTP API and the browser keyboard."""
