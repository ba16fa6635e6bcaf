"""Item 12: a class through the generation service: tokens per second per core, the
in-process batch (the app's scheduler, one torch thread) against the same class sent to
`python -m lib.serve` over HTTP (one process, one thread) and to its Ray Serve deployment
(2 replicas, one thread each).

Each student has their own prompt (no two runs are shared) and asks for the same number
of greedy tokens; a figure is the tokens written divided by the class's wall time and by
the cores the server was given.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request

from bench.common import ROOT, child_env, run_child, set_threads_from_env


def prompts(n: int) -> list[str]:
    return [f"Student {i} writes a short story about the sea, the wind and the" for i in range(n)]


def child(n: int, new_tokens: int) -> dict:
    """The in-process batch: the class submitted to one scheduler at once."""
    set_threads_from_env()
    from lib.model.batching import prepare
    from lib.model.loading import load_model
    from lib.model.result import RunSettings
    from lib.model.result_store import ResultStore
    from lib.model.scheduler import Scheduler, SchedulerLimits

    lm = load_model()
    scheduler = Scheduler(lm, ResultStore(2**31), SchedulerLimits(n, n, 2**31))
    warm = scheduler.submit("warm", prepare(lm, "Warm up", RunSettings(2)))
    while not warm.over:
        warm.wait(-1, 60)
    prepared = [prepare(lm, p, RunSettings(new_tokens)) for p in prompts(n)]
    start = time.perf_counter()
    tickets = [scheduler.submit(f"s{i}", p) for i, p in enumerate(prepared)]
    for t in tickets:
        version = -1
        while not t.over:
            version = t.wait(version, 60)
    wall = time.perf_counter() - start
    scheduler.close()
    assert all(t.status == "done" for t in tickets)
    return {"wall_s": wall, "tokens": sum(t.result.n_steps for t in tickets)}


def _class(url: str, n: int, new_tokens: int) -> dict:
    """The class through the service's /v1/completions at once: wall time and tokens."""
    tokens = [0] * n
    go = threading.Barrier(n + 1)

    def student(i: int) -> None:
        body = {"model": "default", "prompt": prompts(n)[i], "max_tokens": new_tokens,
                "temperature": 0}  # fmt: skip
        req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        go.wait()
        with urllib.request.urlopen(req, timeout=600) as r:
            tokens[i] = json.loads(r.read())["usage"]["completion_tokens"]

    threads = [threading.Thread(target=student, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    go.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return {"wall_s": time.perf_counter() - start, "tokens": sum(tokens)}


def _served(args: list[str], threads: int, n: int, new_tokens: int, log) -> dict:
    """Start `python -m lib.serve ARGS`, wait until it serves, warm it, send the class."""
    from tests.browser import free_port, wait_healthy

    port = free_port()
    cmd = [sys.executable, "-m", "lib.serve", *args, "--threads", str(threads), "--port",
           str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(threads), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        ready = threading.Event()

        def read() -> None:  # all of its output, so a full pipe never blocks it
            for line in proc.stdout:
                if line.startswith("Serving "):  # both ways print it; Ray's once all are up
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 300
        if not (ready.wait(300) and wait_healthy(url, proc, deadline, path="/health")):
            raise RuntimeError(f"{' '.join(cmd)} did not start")
        _class(url, 8, 2)  # first calls (and each replica's, most likely) out of the figure
        log(f"serving: {n} students through {' '.join(args) or 'one process'}")
        return _class(url, n, new_tokens)
    finally:
        proc.send_signal(2)  # SIGINT: Ray Serve shuts down cleanly
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(n: int, new_tokens: int, quick: bool, log) -> dict:
    log(f"serving: {n} students x {new_tokens} tokens, in process (1 thread)")
    inproc = run_child("bench.serving", [str(n), str(new_tokens)], child_env(1), timeout=1800)
    out = {"students": n, "new_tokens": new_tokens, "in_process": inproc | {"cores": 1}}
    out["service"] = _served([], 1, n, new_tokens, log) | {"cores": 1}
    if not quick:  # Ray's start-up (~20 s) is left out of the smoke run
        out["replicas_2"] = _served(["--replicas", "2"], 1, n, new_tokens, log) | {"cores": 2}
    for k in ("in_process", "service", "replicas_2"):
        if k in out:
            out[k]["tokens_per_s_per_core"] = out[k]["tokens"] / out[k]["wall_s"] / out[k]["cores"]
    return out


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]), int(sys.argv[2]))))
