"""Load test of the HTTP API (``keypilot bench serve``): N clients typing at once.

Each client types phrases one character at a time, as the page does: the first keystroke on
a screen uploads the screenshot, the following ones send only its ``screen_id``. Each client
has its own screenshot, so the first keystroke of each really encodes a screen. Requests go
to loopback only: this measures the server, not a network.
"""

from __future__ import annotations

import io
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
from PIL import Image, ImageDraw, ImageFont

from keypilot.serve.live import free_port

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
PHRASES = (
    "see you tomorrow at the station",
    "can you send me the code",
    "thanks so much! 😊",
    "我们明天jian",
    "meeting moved to 3:30 pm",
)


@dataclass
class ClientStats:
    latencies_ms: list[float] = field(default_factory=list)
    uploads: int = 0
    screen_misses: int = 0  # answers whose screen had to be encoded
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)


def synthetic_screenshot(seed: int, size: tuple[int, int] = (720, 1440)) -> bytes:
    """A plain chat-like screen with a message in each bubble, distinct per seed (so each
    client's screen is a cache miss, and a server reading screen text has lines to read)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (245, 246, 248))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=30)
    draw.rectangle([0, 0, size[0], 110], fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    y = 160
    while y < size[1] - 260:
        x0 = rng.choice((30, size[0] // 3))
        draw.rounded_rectangle([x0, y, x0 + rng.randint(200, 440), y + 90], 28, fill=(255, 255, 255))
        draw.text((x0 + 24, y + 28), f"{rng.choice([p for p in PHRASES if p.isascii()]).split()[0]} {rng.randint(10, 9999)}", fill=(20, 20, 20),
                  font=font)
        y += rng.randint(110, 170)
    draw.rounded_rectangle([20, size[1] - 120, size[0] - 20, size[1] - 40], 40, outline=(180, 186, 194), width=3)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _client(url: str, client_id: int, deadline: float, stats: ClientStats) -> None:
    image = synthetic_screenshot(client_id)
    rng = random.Random(client_id)
    screen_id: str | None = None
    with httpx.Client(base_url=url, timeout=60.0) as http:
        while time.perf_counter() < deadline:
            phrase = rng.choice(PHRASES)
            for end in range(len(phrase) + 1):
                if time.perf_counter() >= deadline:
                    return
                data = {"text": phrase[:end], "prev_layout": "EN"}
                files = None
                if screen_id is None:
                    files = {"image": ("screen.png", image, "image/png")}
                else:
                    data["screen_id"] = screen_id
                started = time.perf_counter()
                try:
                    response = http.post("/v1/predict", data=data, files=files)
                    ok = response.status_code == 200
                    detail = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, repr(exc)
                elapsed = (time.perf_counter() - started) * 1000
                if not ok:
                    stats.errors += 1
                    if len(stats.error_samples) < 3:
                        stats.error_samples.append(detail)
                    screen_id = None
                    continue
                stats.latencies_ms.append(elapsed)
                if files is not None:
                    stats.uploads += 1
                answer = response.json()
                stats.screen_misses += not answer["screen_cached"]
                screen_id = answer["screen_id"]


def run_load(url: str, clients: int, seconds: float) -> dict[str, float]:
    """Run ``clients`` typing clients against ``url`` for ``seconds``; returns the figures."""
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise ValueError(f"the load test only targets loopback, not {host!r}")
    all_stats = [ClientStats() for _ in range(clients)]
    started = time.perf_counter()
    deadline = started + seconds
    threads = [threading.Thread(target=_client, args=(url, i, deadline, s), daemon=True) for i, s in enumerate(all_stats)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies = sorted(x for s in all_stats for x in s.latencies_ms)
    errors = sum(s.errors for s in all_stats)
    for sample in [e for s in all_stats for e in s.error_samples][:3]:
        print(f"error: {sample}", file=sys.stderr)
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": len(latencies),
        "uploads": sum(s.uploads for s in all_stats),
        "screen_encodes": sum(s.screen_misses for s in all_stats),
        "errors": errors,
        "throughput_rps": round(len(latencies) / wall, 2),
        "p50_ms": round(_percentile(latencies, 50), 1),
        "p95_ms": round(_percentile(latencies, 95), 1),
        "p99_ms": round(_percentile(latencies, 99), 1),
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else float("nan"),
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the server exited with code {process.returncode} before answering:\n{tail}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not answer {url}/healthz within {timeout:.0f} s")


def bench_serve(
    run: Path | None,
    clients: int = 16,
    seconds: float = 10.0,
    url: str | None = None,
    backend: str = "torch",
    threads: int | None = None,
    int8: bool = False,
    screen_text: bool = True,
) -> dict[str, float]:
    """Start ``keypilot serve --run RUN`` on a free loopback port (or use ``url``) and load it.

    With ``screen_text`` the server reads new screens' text in the background (as ``keypilot
    serve`` does by default); the figures then say how many screens it read."""
    if url is not None:
        return run_load(url.rstrip("/"), clients, seconds)
    if run is None:
        raise ValueError("give --run (a server is started) or --url (a running server on loopback)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "keypilot", "serve", "--run", str(run), "--port", str(port), "--backend", backend, "--no-access-log"]
    if threads:
        command += ["--threads", str(threads)]
    if int8:
        command.append("--int8")
    if not screen_text:
        command.append("--no-screen-text")
    # The server's log goes to a file: an unread pipe would fill up and stall the server.
    with tempfile.NamedTemporaryFile("w+b", suffix=".log") as log, subprocess.Popen(command, stdout=log, stderr=log) as process:
        try:
            _wait_healthy(url, process, Path(log.name))
            run_load(url, min(clients, 2), 2.0)  # warm-up: first-call allocations, lazy imports
            figures = run_load(url, clients, seconds)
            health = httpx.get(f"{url}/healthz", timeout=10.0).json()
            figures["screen_text"] = health.get("screen_text", "off")
            figures["screens_read"] = health.get("screens_read", 0)
            return figures
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
