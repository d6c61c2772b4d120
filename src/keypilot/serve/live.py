"""A live server on a free loopback port, in this process: for tests, screenshots and load tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving_app(app: Any, log_level: str = "warning", access_log: bool = False) -> Iterator[str]:
    """Serve an ASGI ``app`` with uvicorn on a free loopback port and yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, access_log=access_log))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serving(run: Path, data: Path | None = None, screen_text: bool = False) -> Iterator[str]:
    """Serve ``run`` (torch backend, ``data`` as the demo samples; ``screen_text``: read new
    screens in the background) and yield its base URL."""
    from keypilot.inference.predictor import Predictor
    from keypilot.serve.app import create_app

    with serving_app(create_app(Predictor.from_pretrained(run), samples_dir=data, screen_text=screen_text)) as url:
        yield url
