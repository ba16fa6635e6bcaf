"""The generation service as its users run it: a process (`python -m lib.serve`) on the
bundled model, called by OpenAI's own Python client."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np
import pytest

from tests.browser import free_port, wait_healthy

QUESTION = "Name three colours of the rainbow."


@pytest.fixture(scope="module")
def service(processes, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w+") as out:
        proc = processes.start("-m", "lib.serve", "--port", str(port), stdout=out, stderr=out)
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_healthy(url, proc, time.monotonic() + 240, path="/health"):
                out.seek(0)
                pytest.fail("the service did not start:\n" + out.read())
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=10) as r:
        return json.loads(r.read())


def test_openais_client_streams_a_chat_with_the_apps_attention(service, smollm2):
    """Each streamed token's attention tokens equal the app's own capture of the same run
    (`generate` with the chat template, in this process) to 1e-5: positions, weights and
    fingerprint; the text is the run's text."""
    from openai import OpenAI

    from lib.analysis.fingerprint import run_fingerprints
    from lib.model.generation import generate

    client = OpenAI(base_url=service + "/v1", api_key="none")
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=12,
        temperature=0,
        stream=True,
        extra_body={"return_attention_tokens": True},
    )
    text, tokens, finish = "", [], None
    for chunk in stream:
        delta = chunk.choices[0].delta
        text += delta.content or ""
        tokens += getattr(delta, "attention_tokens", None) or []
        finish = chunk.choices[0].finish_reason or finish
    app = generate(smollm2, QUESTION, 12, chat_template=True)
    assert text == app.generated_text and len(tokens) == app.n_steps
    assert finish == ("stop" if app.stop_reason == "eos" else "length")
    fps = run_fingerprints(app).vectors
    for s, t in enumerate(tokens):
        assert t["token_id"] == int(app.generated_ids[s])
        keys = app.query_position(s) + 1
        mean = app.attention[s, :, :, :keys].astype(np.float64).mean(axis=(0, 1))
        assert len(t["positions"]) == 32  # the seed server's default top-k
        np.testing.assert_allclose(t["weights"], mean[t["positions"]], atol=1e-5)
        rest = np.delete(mean, t["positions"])  # no key left out weighs more than one sent
        assert rest.max() <= min(t["weights"]) + 1e-6
        np.testing.assert_allclose(t["fingerprint"], fps[s], atol=1e-5)


def test_openais_client_gets_errors_as_its_exceptions_and_whole_answers(service):
    import openai
    from openai import OpenAI

    client = OpenAI(base_url=service + "/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4", prompt="Hello")
    with pytest.raises(openai.BadRequestError, match="not supported"):
        client.completions.create(model="default", prompt="Hello", stop=["."])
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hi"}], max_tokens=100_000
        )
    done = client.completions.create(model="default", prompt="One, two, three,", max_tokens=3,
                                     temperature=0)  # fmt: skip
    assert done.usage.completion_tokens == 3 and done.choices[0].finish_reason == "length"
    # A whole conversation (the template's path for several turns), answered at once.
    turns = [{"role": "system", "content": "Answer in one word."},
             {"role": "user", "content": "What colour is the sky?"}]  # fmt: skip
    whole = client.chat.completions.create(
        model="default", messages=turns, max_tokens=4, temperature=0,
        extra_body={"return_attention_tokens": True, "attention_tokens_top_k": 5},
    )  # fmt: skip
    tokens = whole.choices[0].message.attention_tokens
    assert len(tokens) == whole.usage.completion_tokens >= 1
    assert all(len(t["positions"]) == 5 and len(t["fingerprint"]) == 20 for t in tokens)
    assert tokens[0]["position"] == whole.usage.prompt_tokens


def test_a_client_that_goes_away_gives_its_place_up(service):
    """A stream read for two tokens, then closed: the run stops (the worker makes far fewer
    passes than the 50 tokens asked for) and the service is idle again."""
    import requests

    before = health(service)["forward_passes"]
    body = {"model": "default", "prompt": "Once upon a time, in a small village,",
            "max_tokens": 50, "temperature": 0.8, "seed": 7, "stream": True}  # fmt: skip
    with requests.post(service + "/v1/completions", json=body, stream=True, timeout=120) as r:
        seen = 0
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["text"]:
                seen += 1
                if seen == 2:
                    break
    deadline = time.monotonic() + 60
    while (h := health(service))["running"] or h["waiting"]:
        assert time.monotonic() < deadline, h
        time.sleep(0.1)
    assert h["forward_passes"] - before < 15  # 50 tokens would take 50 passes
