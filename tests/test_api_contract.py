"""The HTTP API against its own OpenAPI document, fuzzed by Schemathesis with every check.

``schemathesis run URL/openapi.json --checks all`` against a live loopback server on a tiny
real model: every phase (examples, coverage, fuzzing, stateful), positive and negative data.
It must find nothing: no server error, no undocumented status, header or content type, no
answer off its schema, no schema-valid request refused, no invalid one accepted. The fuzzer
is told only what a screenshot looks like (``api_fuzz_hooks.py``). A fixed seed keeps the run
reproducible; ``--max-examples`` bounds it (a few seconds).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, make_tiny_run

pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from keypilot.serve.app import create_app  # noqa: E402
from keypilot.serve.live import serving_app  # noqa: E402

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Iterator[str]:
    from keypilot.inference.predictor import Predictor

    run, data = make_tiny_run(tmp_path_factory.getbasetemp() / "serve-tiny")
    with serving_app(create_app(Predictor.from_pretrained(run), samples_dir=data)) as url:
        yield url


def test_schemathesis_finds_no_failure(server_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "api_fuzz_hooks",
           "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT / "src")])}
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{server_url}/openapi.json", "--checks", "all",
               "--max-examples", "30", "--seed", "0", "--workers", "1", "--generation-database", "none",
               "--request-timeout", "30", "--no-color", "--report-dir", str(tmp_path)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "passed" in output and "failure" not in output.split("SUMMARY")[-1], output[-3000:]


def test_openapi_states_the_contract(server_url: str) -> None:
    """What the fuzzer relies on is written down: statuses, enums, the screen rule, Retry-After."""
    import httpx

    spec = httpx.get(f"{server_url}/openapi.json").json()
    predict = spec["paths"]["/v1/predict"]["post"]
    assert set(predict["responses"]) == {"200", "400", "404", "413", "415", "422", "503"}
    for status in ("400", "404", "413", "415", "422", "503"):
        assert predict["responses"][status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "Retry-After" in predict["responses"]["503"]["headers"]
    body = predict["requestBody"]["content"]["application/json"]["schema"]
    assert [option["required"] for option in body["anyOf"]] == [["image"], ["screen_id"], ["input_type"]]
    assert body["additionalProperties"] is False
    assert body["properties"]["prev_layout"]["enum"] == ["EN", "ZH", "SYM", "EMOJI", "NUM"]
    assert body["properties"]["input_type"]["anyOf"][0]["enum"] == ["text", "number", "phone", "email", "password", "url"]
    answer = spec["components"]["schemas"]["Answer"]
    assert answer["additionalProperties"] is False and "withheld" in answer["required"]
    assert spec["components"]["schemas"]["Layout"]["enum"] == ["EN", "ZH", "SYM", "EMOJI", "NUM"]
    assert spec["components"]["schemas"]["Task"]["enum"] == ["error_correction", "auto_completion", "suggestion"]
