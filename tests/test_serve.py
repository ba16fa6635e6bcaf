"""The generation service on a tiny random Llama, in-process (FastAPI's test client): its
answers equal the app's own run of the same request, and nothing a client sends gets a 500.

The expected attention tokens are computed here from the run's captured rows with numpy
(mean over layers and heads, sorted), and the fingerprint by the atlas's own function on
those rows, independently of the service's code path (the scheduler's batch, the ticket's
rows while the run goes on, the JSON)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.tiny import tiny_lm

PROMPT = "the old wizard walked through the forest"


@pytest.fixture(scope="module")
def lm():
    return tiny_lm()


@pytest.fixture(scope="module")
def client(lm):
    from fastapi.testclient import TestClient

    from lib.serve.api import create_app

    with TestClient(create_app(lm, top_k=4)) as c:
        yield c


def expected(lm, prompt: str, n: int, k: int):
    """The app's own run (`generate`: one sequence, no scheduler) and, per token, the top-k
    positions and weights of its mean attention row and its fingerprint."""
    from lib.analysis.fingerprint import run_fingerprints
    from lib.model.generation import generate

    result = generate(lm, prompt, n)
    rows = []
    for s, fp in enumerate(run_fingerprints(result).vectors):
        keys = result.query_position(s) + 1
        mean = result.attention[s, :, :, :keys].astype(np.float64).mean(axis=(0, 1))
        order = sorted(range(keys), key=lambda i: (-mean[i], i))[:k]
        rows.append((order, mean[order], fp))
    return result, rows


def check_tokens(tokens: list[dict], result, rows) -> None:
    assert [t["index"] for t in tokens] == list(range(result.n_steps))
    assert [t["token_id"] for t in tokens] == result.generated_ids.tolist()
    for t, (order, weights, fp) in zip(tokens, rows, strict=True):
        assert t["position"] == result.prompt_len + t["index"]
        assert t["positions"] == order
        np.testing.assert_allclose(t["weights"], weights, atol=1e-5)
        np.testing.assert_allclose(t["fingerprint"], fp, atol=1e-5)


def test_a_completion_equals_the_apps_run_with_its_attention(client, lm):
    body = {"model": "default", "prompt": PROMPT, "max_tokens": 6, "temperature": 0,
            "return_attention_tokens": True}  # fmt: skip
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    result, rows = expected(lm, PROMPT, 6, 4)
    choice = answer["choices"][0]
    assert choice["text"] == result.generated_text
    assert choice["finish_reason"] == ("stop" if result.stop_reason == "eos" else "length")
    assert answer["usage"] == {"prompt_tokens": result.prompt_len,
                               "completion_tokens": result.n_steps,
                               "total_tokens": result.prompt_len + result.n_steps}  # fmt: skip
    check_tokens(choice["attention_tokens"], result, rows)


def events(response) -> list[dict | str]:
    out = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_a_stream_sends_each_token_with_its_attention(client, lm):
    body = {"model": "tiny-llama", "prompt": "a cat sat on the mat", "max_tokens": 8,
            "temperature": 0, "stream": True, "return_attention_tokens": True,
            "attention_tokens_top_k": 3, "stream_options": {"include_usage": True}}  # fmt: skip
    with client.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        got = events(r)
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    usage = chunks.pop()  # asked for: a last chunk with no choices
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] >= 1
    result, rows = expected(lm, "a cat sat on the mat", 8, 3)
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert text == result.generated_text
    tokens = [t for c in chunks for t in c["choices"][0].get("attention_tokens", [])]
    check_tokens(tokens, result, rows)
    finish = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finish[-1] in ("stop", "length") and not any(finish[:-1])


def test_without_asking_no_attention_is_sent(client):
    r = client.post("/v1/completions", json={"model": "default", "prompt": PROMPT})
    assert r.status_code == 200
    assert "attention_tokens" not in r.json()["choices"][0]
    assert r.json()["usage"]["completion_tokens"] <= 16  # OpenAI's default max_tokens


def test_models_and_health(client, lm):
    assert client.get("/v1/models").json()["data"][0]["id"] == lm.spec
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["running"] == 0 and health["waiting"] == 0


GOOD = {"model": "default", "prompt": PROMPT}


@pytest.mark.parametrize(
    ("path", "body", "status", "param", "words"),
    [
        ("/v1/completions", GOOD | {"model": "gpt-4"}, 404, "model", "not served"),
        ("/v1/completions", GOOD | {"n": 2}, 400, "n", "1"),
        ("/v1/completions", GOOD | {"stop": ["\n"]}, 400, "stop", "not supported"),
        ("/v1/completions", GOOD | {"temperature": 5}, 400, "temperature", "less than"),
        ("/v1/completions", GOOD | {"temperature": "hot"}, 400, "temperature", "number"),
        ("/v1/completions", GOOD | {"top_p": 0}, 400, "top_p", "greater than"),
        ("/v1/completions", GOOD | {"max_tokens": 0}, 400, "max_tokens", "greater than"),
        ("/v1/completions", GOOD | {"max_tokens": 10_000}, 400, "max_tokens", "at most"),
        ("/v1/completions", GOOD | {"seed": -1}, 400, "seed", "greater than"),
        ("/v1/completions", GOOD | {"logit_bias": {"1": 5}}, 400, "logit_bias", "extra"),
        (
            "/v1/completions",
            GOOD | {"attention_tokens_top_k": 0},
            400,
            "attention_tokens_top_k",
            "greater than",
        ),  # fmt: skip
        ("/v1/completions", GOOD | {"prompt": "   "}, 400, "prompt", "empty"),
        ("/v1/completions", GOOD | {"prompt": ["a", "b"]}, 400, "prompt", "string"),
        ("/v1/completions", {"prompt": PROMPT}, 400, "model", "required"),
        ("/v1/chat/completions", {"model": "default", "messages": []}, 400, "messages", "least"),
        (
            "/v1/chat/completions",
            {"model": "default", "messages": [{"role": "robot", "content": "hi"}]},
            400,
            "messages.0.role",
            "user",
        ),  # fmt: skip
        (
            "/v1/chat/completions",
            {"model": "default", "messages": [{"role": "user", "content": "hi"}]},
            400,
            "messages",
            "chat template",
        ),  # fmt: skip
    ],
)
def test_bad_requests_get_a_4xx_in_openais_shape(client, path, body, status, param, words):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == param
    assert words.lower() in err["message"].lower()


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"[]", b"null", b'"x"', b'{"model": "default", "prompt": "\xff\xfe"}',
     b'{"model": "default", "prompt": "a", "temperature": NaN}',
     b'{"model": "default", "prompt": "a", "max_tokens": 1e400}'],
)  # fmt: skip
def test_malformed_bodies_get_a_400(client, raw):
    r = client.post("/v1/completions", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert "message" in r.json()["error"]


def test_a_body_too_large_and_unknown_places(client):
    big = json.dumps(GOOD | {"prompt": "a " * 600_000})
    r = client.post("/v1/completions", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger" in r.json()["error"]["message"]
    assert client.get("/v1/nothing").status_code == 404
    assert "error" in client.get("/v1/nothing").json()
    assert client.get("/v1/completions").status_code == 405


def test_an_app_servers_run_arrives_whole(client, lm):
    """POST /v1/tav/runs (what `lib.serve.remote` sends): the tokens as they come, then the
    whole result, equal to the app's own run; bad settings get a 400."""
    import base64

    from lib.model.generation import generate
    from lib.model.result import GenerationResult, RunSettings

    settings = RunSettings(max_new_tokens=4).to_dict()
    body = {"model": lm.spec, "prompt": "a cat sat on", "settings": settings}
    with client.stream("POST", "/v1/tav/runs", json=body) as r:
        assert r.status_code == 200
        got = events(r)
    assert got[-1]["status"] == "done" and all(e["status"] != "failed" for e in got)
    result = GenerationResult.from_npz(base64.b64decode(got[-1]["npz"]))
    here = generate(lm, "a cat sat on", 4)
    assert result.token_ids.tolist() == here.token_ids.tolist()
    np.testing.assert_allclose(result.attention, here.attention, atol=1e-5)
    assert [p for e in got for p in e["pieces"]] == list(here.generated_labels)
    for bad in ({"max_new_tokens": 0}, {"max_new_tokens": 2, "sampling": {"temperature": -1}},
                {}, {"max_new_tokens": 2, "forced_tokens": [-1]},
                {"max_new_tokens": 2, "forced_tokens": [10**9]}):  # fmt: skip
        r = client.post("/v1/tav/runs", json=body | {"settings": bad})
        assert r.status_code == 400, (bad, r.text)
    for raw in ('{"max_new_tokens": 1e400}', '{"max_new_tokens": 2, "forced_tokens": [1e400]}'):
        text = json.dumps(body | {"settings": "S"}).replace('"S"', raw)
        r = client.post("/v1/tav/runs", content=text, headers={"content-type": "application/json"})
        assert r.status_code == 400, (raw, r.text)
    assert client.post("/v1/tav/runs", json=body | {"model": "other"}).status_code == 404


def test_a_temperature_too_small_to_compute_is_the_greedy_choice(client, lm):
    """At temperature 1e-38 the logits overflow and the softmax is NaN: the draw takes its
    limit, the most likely token, and the other runs of the batch never see a failure."""
    from lib.model.generation import generate

    body = {"model": "default", "prompt": PROMPT, "max_tokens": 5, "temperature": 1e-38}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == generate(lm, PROMPT, 5).generated_text
