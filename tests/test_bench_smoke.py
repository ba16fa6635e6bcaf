"""The benchmark (`uv run python -m bench`) in its tiny `--quick` form, so it cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Per item, the figures that must be measured (positive numbers).
REQUIRED = {
    "memory": ["stored_bytes", "naive_bytes", "stored_fraction", "peak_rss_bytes"],
    "graph": [
        "edges",
        "build_s",
        "seed_build_s",
        "speedup_vs_seed",
        "json_bytes",
        "seed_json_bytes",
    ],
    "warm_start": ["load_s", "import_s"],
    "classroom": [
        "solo_s",
        "serial_p95_s",
        "batched_p95_s",
        "batched_first_token_max_s",
        "batched_forward_passes",
        "peak_rss_bytes",
    ],
}
CAPTURE_ROW = [
    "prompt_tokens",
    "ours_cpu_s",
    "plain_sdpa_cpu_s",
    "seed_eager_cpu_s",
    "ratio_vs_plain",
    "ratio_vs_seed",
]
RERUN = ["graph_page_s", "trivial_script_s", "ratio_vs_trivial"]
STEP_MOVE = ["step_move_s", "step_shown_s", "trivial_move_s", "frames_json_bytes"]


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def test_quick_benchmark_measures_every_item(tmp_path, processes, smollm2):
    from lib.model.loading import converted_bundled_dir

    converted_bundled_dir()  # the children load from the cache this session uses
    out = tmp_path / "bench.json"
    proc = processes.run("-m", "bench", "--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 capture" in proc.stdout and "5 rerun" in proc.stdout  # the table was printed

    report = json.loads(out.read_text())
    items = report["items"]
    assert set(items) == {
        "capture",
        "memory",
        "graph",
        "warm_start",
        "rerun",
        "step_move",
        "train_lab",
        "atlas",
        "classroom",
        "autoplay",
        "startup",
        "serving",
        "patching",
    }
    for row in items["capture"]["rows"]:
        assert all(positive(row[k]) for k in CAPTURE_ROW), row
        assert row["tokens_match_plain"] and row["new_tokens"] > 0
    for item, keys in REQUIRED.items():
        assert all(positive(items[item][k]) for k in keys), (item, items[item])
    for case in ("default", "show_all_threshold_0"):
        assert all(positive(items["rerun"][case][k]) for k in RERUN), items["rerun"][case]
    atlas = items["atlas"]
    assert all(
        positive(atlas["ingest"][k]) for k in ("tokens", "fingerprints", "ours_s", "plain_s")
    )
    runs = atlas["discovery"]
    assert positive(runs["1000"]["wall_s"]) and runs["1000"]["n_points"] == 1000
    assert all(positive(atlas["map"][k]) for k in ("build_s", "json_bytes", "draw_ms"))
    assert {r["item"].split()[0] for r in report["table"]} == {str(i) for i in range(1, 14)}
    patch = items["patching"]
    assert positive(patch["batched_s"]) and positive(patch["one_by_one_s"])
    assert patch["max_difference"] < 1e-4  # batched or not, the same numbers
    served = items["serving"]  # quick: the in-process batch and one service process
    for way in ("in_process", "service"):
        assert served[way]["tokens"] == served["students"] * served["new_tokens"], served
        assert positive(served[way]["tokens_per_s_per_core"]), served
    lab = items["train_lab"]
    assert positive(lab["epochs_per_s"]) and positive(lab["torch_encoder_epochs_per_s"])
    assert positive(lab["induction"]["total_s"]) and positive(lab["one_layer"]["total_s"])
    move = items["step_move"]
    assert all(positive(move[k]) for k in STEP_MOVE), move
    assert move["fragment_reruns"] == len(move["times_s"]["graph"])  # the fragment, only
    tick = items["autoplay"]
    assert all(positive(tick[n][case]) for n in ("3", "6") for case in ("kept", "replay")), tick
    start = items["startup"]["start"]
    assert all(positive(start[k]) for k in ("health_s", "welcome_s", "prompt_s", "generate_s"))
    pages = items["startup"]["imports"]
    assert pages[0]["page"] == "lessons/home.py" and "torch" not in pages[0]["added"]
    assert "torch" not in pages[0]["main"]  # main.py and Welcome: no torch
    assert report["machine"]["torch"] and report["machine"]["cores"] >= 1
