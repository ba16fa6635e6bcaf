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


def started(processes, log_path, health: str, *args: str):
    """A child `python -m ...` on a free port, once its health check answers: (url, proc)."""
    port = free_port()
    out = open(log_path, "w+")  # noqa: SIM115 - closed by `stop`
    proc = processes.start(*args, "--port", str(port), stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    if not wait_healthy(url, proc, time.monotonic() + 240, path=health):
        out.seek(0)
        proc.kill()
        pytest.fail(f"{' '.join(args)} did not start:\n" + out.read())
    return url, proc, out


def stop(proc, out) -> None:
    proc.terminate()
    proc.wait(timeout=30)
    out.close()


@pytest.fixture(scope="module")
def sidecar(processes, tmp_path_factory):
    """The atlas sidecar with --online, on a store of its own, with no map of its own (so
    the shipped one): (url, store path)."""
    folder = tmp_path_factory.mktemp("sidecar")
    db = folder / "online.sqlite"
    url, proc, out = started(processes, folder / "sidecar.log", "/health", "-m", "lib.atlas",
                             "serve", "--online", "--db", str(db), "--discovery-dir",
                             str(folder / "maps"))  # fmt: skip
    yield url, db
    stop(proc, out)


@pytest.fixture(scope="module")
def service(processes, tmp_path_factory, sidecar):
    """`python -m lib.serve` sending every run's fingerprints to the sidecar."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    url, proc, out = started(processes, log, "/health", "-m", "lib.serve", "--sidecar", sidecar[0])
    yield url
    stop(proc, out)


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=10) as r:
        return json.loads(r.read())


def test_openais_client_streams_a_chat_with_the_apps_attention(service, smollm2):
    """Each streamed token's attention tokens equal the app's own capture of the same run
    (`generate` with the chat template, in this process) to 1e-5: positions, weights and
    fingerprint; the text is the run's text."""
    from openai import OpenAI

    client = OpenAI(base_url=service + "/v1", api_key="none")
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=12,
        temperature=0,
        stream=True,
        extra_body={"return_attention_tokens": True},
    )
    check_against_the_app(stream, smollm2)


def check_against_the_app(stream, smollm2) -> None:
    """The streamed chat answer to QUESTION (12 tokens, greedy) against the app's own run
    of it: its text, and each token's positions, weights and fingerprint to 1e-5."""
    from lib.analysis.fingerprint import run_fingerprints
    from lib.model.generation import generate

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


def test_runs_arrive_at_the_sidecar_classified_and_without_text(service, sidecar):
    """The service sends each finished run's fingerprints to the sidecar (--online): the
    store holds exactly the numbers the client got with its tokens, no text, and each
    answer the sidecar gives is the map's classification of that fingerprint."""
    from openai import OpenAI

    from lib.atlas.classify import Atlas
    from lib.atlas.shipped import SHIPPED
    from lib.atlas.store import Store

    url, db = sidecar
    since = time.time()
    client = OpenAI(base_url=service + "/v1", api_key="none")
    done = client.completions.create(
        model="default", prompt="The library opens at nine and closes at", max_tokens=5,
        temperature=0, extra_body={"return_attention_tokens": True},
    )  # fmt: skip
    tokens = done.choices[0].attention_tokens
    want = np.array([t["fingerprint"] for t in tokens], dtype=np.float32)

    def ours():  # this run's rows among everything stored since it was asked for
        stored = Store(db).fingerprints(source="api", since=since)
        close = np.abs(stored.vectors[:, None, :] - want[None]).max(axis=2) <= 1e-6
        return stored, close

    deadline = time.monotonic() + 60
    while not ours()[1].any(axis=0).all():  # the event: all of them stored
        assert time.monotonic() < deadline, health(service)
        time.sleep(0.1)
    stored, close = ours()
    rows = close.argmax(axis=0)  # the stored row of each token
    assert stored.steps[rows].tolist() == list(range(len(tokens)))
    assert len(set(stored.run_ids[rows].tolist())) == len(tokens)  # one stored post each
    assert set(stored.models) == {"bundled:SmolLM2-135M-Instruct"}
    assert set(stored.labels) == {""} and set(stored.contexts) == {""}
    assert health(service)["sidecar"]["failed"] == 0
    # Online: what the sidecar answered for one posted is the map's own classification.
    vector = tokens[0]["fingerprint"]
    body = json.dumps({"request_id": "check", "vector": vector, "step": 0}).encode()
    req = urllib.request.Request(url + "/fingerprint", data=body,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as r:
        answer = json.loads(r.read())
    assert answer["manifold"] == Atlas(SHIPPED).classify(vector)["manifold"]


def test_an_app_server_with_a_generation_url_gets_its_runs_from_the_service(
    service, app, smollm2, monkeypatch
):
    """TAV_GENERATION_URL: the Generate page's run is written by the service (its forward
    passes count it) and arrives whole: tokens and every layer's and head's attention equal
    the app's own run of the same request to 1e-5. A service that cannot be reached: its
    message on the page, no traceback, and the run on screen stays."""
    from app import caches
    from lib.model.generation import generate as generate_here
    from tests.test_app import generate

    prompt = "A run written far away, for one student's page"
    monkeypatch.setenv("TAV_GENERATION_URL", service)
    caches.scheduler.clear()
    try:
        before = health(service)["forward_passes"]
        generate(app, prompt=prompt, max_tokens=5)
        got = app.session_state["run"].result
        assert health(service)["forward_passes"] > before
        here = generate_here(smollm2, prompt, 5)
        assert got.token_ids.tolist() == here.token_ids.tolist()
        assert got.labels == here.labels and got.generated_text == here.generated_text
        np.testing.assert_allclose(got.attention, here.attention, atol=1e-5)
        np.testing.assert_allclose(got.top_probs, here.top_probs, atol=1e-5)

        monkeypatch.setenv("TAV_GENERATION_URL", f"http://127.0.0.1:{free_port()}")
        caches.scheduler.clear()
        generate(app, prompt="Nobody is listening there", max_tokens=3)
        assert any("cannot be reached" in e.value for e in app.error)
        assert app.session_state["run"].result is got  # the run on screen stays
    finally:
        caches.scheduler.clear()


def test_stop_on_an_app_server_frees_the_place_at_the_service(service, smollm2):
    """The remote scheduler's release (the Stop button's): the connection closes, the
    service stops writing the run (far fewer passes than its 50 tokens) and is idle."""
    from lib.model.batching import prepare
    from lib.model.result import RunSettings, SamplingSettings
    from lib.model.result_store import ResultStore
    from lib.serve.remote import RemoteScheduler

    before = health(service)["forward_passes"]
    remote = RemoteScheduler(service, smollm2, ResultStore(2**26))
    settings = RunSettings(50, sampling=SamplingSettings(do_sample=True, seed=11))
    ticket = remote.submit("stop-me", prepare(smollm2, "Once upon a time there was", settings))
    version = -1
    while ticket.written < 2:  # the event: two tokens have come back
        version = ticket.wait(version, 60)
        assert not ticket.over, ticket.error
    remote.release(ticket)
    assert ticket.status == "cancelled"
    deadline = time.monotonic() + 60
    while (h := health(service))["running"] or h["waiting"]:
        assert time.monotonic() < deadline, h
        time.sleep(0.1)
    assert h["forward_passes"] - before < 15
