"""The attention atlas end to end, as a user runs it from a shell:

    uv run python examples/manifold_quickstart.py [--workdir DIR]

1. ingest: two texts of the built-in corpus, read by the bundled model, every token's
   attention fingerprint stored in a fresh SQLite file (`python -m lib.atlas ingest`);
2. discover: UMAP + HDBSCAN over them, the map written as Parquet with its manifest
   (`python -m lib.atlas discover`), its progress followed live on its WebSocket
   (`--websocket-port 0`: any free port, named on the job's first line);
3. serve: the classify service started as a process (`python -m lib.atlas serve`);
4. classify: a stored fingerprint and a made-up one sent to it with `requests`, the
   answers printed.

Each step is the command a user would type; the script stops the service at the end.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [ROOT / "lib/atlas/corpus/prose_lighthouse.txt", ROOT / "lib/atlas/corpus/code_python.txt"]


def atlas(*args: str) -> list[str]:
    return [sys.executable, "-m", "lib.atlas", *args]


def step(title: str, cmd: list[str]) -> None:
    print(f"\n== {title}\n$ {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def discover(cmd: list[str]) -> None:
    """Run the discovery job and follow its progress events on its WebSocket."""
    from websockets.sync.client import connect

    print(f"\n== 2. discover\n$ {' '.join(cmd[1:])}", flush=True)
    job = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    first = job.stdout.readline()  # "Progress on ws://127.0.0.1:N"
    if not first.startswith("Progress on "):
        raise RuntimeError(f"the job did not start its progress server: {first!r}")
    with connect(first.split(" on ", 1)[1].strip(), open_timeout=30) as ws:
        while True:
            event = json.loads(ws.recv(timeout=600))
            print(f"progress: {event['fraction']:4.0%} {event['stage']}", flush=True)
            if event["done"]:
                break
    print(job.stdout.read(), end="")
    if job.wait(timeout=120) != 0:
        raise RuntimeError("the discovery job failed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, service: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError("the service stopped; see its output above")
        try:
            return requests.get(f"{url}/health", timeout=2).json()
        except requests.RequestException:
            time.sleep(0.3)
    raise TimeoutError("the service did not answer")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, help="where the store and the map go (a temp folder)")
    args = p.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tav-quickstart-"))
    db, maps = work / "atlas.sqlite", work / "discovery"

    step("1. ingest", atlas("ingest", "--db", str(db), "--no-corpus", *map(str, TEXTS)))
    discover(
        atlas("discover", "--db", str(db), "--output", str(maps), "--hours", "0",
              "--min-cluster-size", "10", "--websocket-port", "0"),
    )  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = atlas("serve", "--db", str(db), "--discovery-dir", str(maps), "--port", str(port))
    print(f"\n== 3. serve\n$ {' '.join(cmd[1:])}", flush=True)
    service = subprocess.Popen(cmd, cwd=ROOT)
    try:
        print("health:", json.dumps(wait_healthy(url, service)))
        print("\n== 4. classify")
        sys.path.insert(0, str(ROOT))  # the library, from this checkout
        from lib.atlas.store import Store

        stored = Store(db).fingerprints(limit=1).vectors[0].tolist()
        for name, vector in (("a stored token", stored), ("a made-up one", [0.05] * 20)):
            answer = requests.post(f"{url}/classify", json={"vector": vector}, timeout=30)
            answer.raise_for_status()
            print(f"{name}: {json.dumps(answer.json())}")
        bad = requests.post(f"{url}/classify", json={"vector": [1, 2]}, timeout=30)
        print(f"a vector of 2 numbers: HTTP {bad.status_code}")
    finally:
        service.terminate()
        service.wait(timeout=30)
    print(f"\nthe store and the map are in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
