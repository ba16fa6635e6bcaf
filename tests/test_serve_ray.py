"""The generation service on Ray Serve with 2 replicas (`python -m lib.serve --replicas 2`,
a local Ray cluster started by the process), called as its users call it."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import urllib.request
from collections import Counter

import pytest

from tests.browser import free_port
from tests.test_serve_model import QUESTION, check_against_the_app, health

STUDENTS = 30


@pytest.fixture(scope="module")
def replicas(processes, tmp_path_factory):
    pytest.importorskip("ray.serve", reason="uv sync --extra distributed (.ci/run does)")
    port = free_port()
    log = tmp_path_factory.mktemp("ray") / "serve.log"
    proc = processes.start("-m", "lib.serve", "--replicas", "2", "--threads", "1", "--port",
                           str(port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)  # fmt: skip
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:  # all of its output, so a full pipe never blocks it
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Serving on "):  # every replica is up (serve.run returned)
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(300):
        proc.kill()
        log.write_text("".join(lines))
        pytest.fail("the deployment did not start:\n" + "".join(lines[-40:]))
    yield f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGINT)  # serve.shutdown(), then Ray's own cluster goes
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_a_run_through_two_replicas_equals_the_apps_run(replicas, smollm2):
    from openai import OpenAI

    client = OpenAI(base_url=replicas + "/v1", api_key="none", max_retries=0)
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": QUESTION}], max_tokens=12,
        temperature=0, stream=True, extra_body={"return_attention_tokens": True},
    )  # fmt: skip
    check_against_the_app(stream, smollm2)


def test_thirty_students_at_once_all_finish_on_both_replicas(replicas):
    results: list = [None] * STUDENTS
    start = threading.Barrier(STUDENTS)

    def student(i: int) -> None:
        import requests

        body = {"model": "default", "prompt": f"Student {i} writes about the sea and the",
                "max_tokens": 8, "temperature": 0, "stream": True}  # fmt: skip
        start.wait()
        text, finish = "", None
        with requests.post(replicas + "/v1/completions", json=body, stream=True,
                           timeout=300) as r:  # fmt: skip
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("data: {"):
                    choice = json.loads(line[6:])["choices"][0]
                    text += choice["text"]
                    finish = choice["finish_reason"] or finish
        results[i] = (r.status_code, finish, text)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(STUDENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None and r[0] == 200 and r[1] in ("length", "stop") for r in results)
    assert all(r[2] for r in results)
    served = Counter(health(replicas)["process"] for _ in range(20))
    assert len(served) == 2, served  # the proxy spreads requests over both replicas
    with urllib.request.urlopen(replicas + "/v1/models", timeout=10) as r:
        assert json.loads(r.read())["data"][0]["id"] == "bundled:SmolLM2-135M-Instruct"
