"""`uv run python -m bench`: the performance figures, each against a baseline.

Every figure is measured in one run against a baseline measured in the same run (cases
take turns, medians are kept), printed as a table and saved as JSON. `--quick` is a tiny
version (short prompts, few tokens, one repeat, no 2,000-token or GGUF runs) for the
smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import ROOT, machine

DEFAULT_OUT = ROOT / "bench-results" / "bench.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (smoke test)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON path ({DEFAULT_OUT})")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5; quick 1)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine two OpenMP threads make "
        "every other job's load a slowdown of several times, which no median removes)",
    )
    return p.parse_args(argv)


def sizes(quick: bool) -> dict:
    if quick:
        return {
            "capture_prompts": [25],
            "new_tokens": 6,
            "memory_prompt": 120,
            "graph_prompt": 40,
            "rerun_prompt": 25,
            "gguf_repeats": 0,
            "seed_rss": False,
            "bytecode": False,
            "class": (4, 4),
            "autoplay": (3, 6),
            "serving": (4, 4),
        }
    return {
        "capture_prompts": [25, 120, 500, 2000],
        "new_tokens": 50,
        "memory_prompt": 2000,
        "graph_prompt": 200,
        "rerun_prompt": 200,
        "gguf_repeats": 2,
        "seed_rss": True,
        "bytecode": True,
        "class": (30, 20),
        "autoplay": (5, 50),
        "serving": (30, 20),
    }


def fmt_s(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def fmt_b(b: float) -> str:
    return f"{b / 1e9:.2f} GB" if b >= 1e9 else f"{b / 1e6:.1f} MB"


def table(items: dict) -> list[dict]:
    """One row per figure: what, ours, baseline, ratio, target, ok."""
    rows = []

    def row(item, what, ours, base, ratio, target, ok) -> None:
        rows.append(
            {
                "item": item,
                "what": what,
                "ours": ours,
                "baseline": base,
                "ratio": ratio,
                "target": target,
                "ok": ok,
            }
        )

    if "capture" in items:
        for r in items["capture"]["rows"]:
            what = f"generate, {r['prompt_tokens']}-token prompt + {r['new_tokens']} (CPU time)"
            row(
                "1 capture",
                what,
                fmt_s(r["ours_cpu_s"]),
                f"{fmt_s(r['plain_sdpa_cpu_s'])} plain sdpa",
                f"{r['ratio_vs_plain']:.3f}",
                "<= 1.10",
                r["ratio_vs_plain"] <= 1.10,
            )
            row(
                "1 capture",
                "  same, vs the seed's eager + output_attentions",
                fmt_s(r["ours_cpu_s"]),
                f"{fmt_s(r['seed_eager_cpu_s'])} seed eager",
                f"{r['ratio_vs_seed']:.3f}",
                "",
                None,
            )
    if "memory" in items:
        m = items["memory"]
        T = f"{m['prompt_tokens']}+{m['new_tokens']} tokens"
        row(
            "2 memory",
            f"stored result, {T}",
            fmt_b(m["stored_bytes"]),
            f"{fmt_b(m['naive_bytes'])} naive L*H*T^2",
            f"1/{1 / m['stored_fraction']:.0f}",
            "<= 1/20",
            m["stored_fraction"] <= 1 / 20,
        )
        seed = m.get("seed_peak_rss_bytes")
        row(
            "2 memory",
            f"peak RSS of a process doing only that run (model load included), {T}",
            fmt_b(m["peak_rss_bytes"]),
            f"{fmt_b(seed)} seed eager" if seed else "-",
            f"{m['peak_rss_bytes'] / seed:.2f}" if seed else "-",
            "< 1.5 GB",
            m["peak_rss_bytes"] < 1.5e9,
        )
    if "graph" in items:
        g = items["graph"]
        what = f"{g['prompt_tokens']}x{g['generated_tokens']} tokens, threshold 0, all"
        row(
            "3 graph",
            f"build figure, {what} ({g['edges']:,} edges)",
            fmt_s(g["build_s"]),
            f"{fmt_s(g['seed_build_s'])} one trace per edge",
            f"1/{g['speedup_vs_seed']:.0f}",
            "<= 100 ms, >= 10x",
            g["build_s"] <= 0.1 and g["speedup_vs_seed"] >= 10,
        )
        row(
            "3 graph",
            "figure JSON sent to the browser",
            fmt_b(g["json_bytes"]),
            f"{fmt_b(g['seed_json_bytes'])} one trace per edge",
            f"{g['json_bytes'] / g['seed_json_bytes']:.2f}",
            "< 1 MB",
            g["json_bytes"] < 1e6,
        )
    if "warm_start" in items:
        w = items["warm_start"]
        gguf = w.get("gguf_load_s")
        row(
            "4 warm start",
            "load_model() from the converted cache (fresh process, imports done)",
            fmt_s(w["load_s"]),
            f"{fmt_s(gguf)} from the GGUF" if gguf else "- (quick: no GGUF run)",
            f"{w['ratio_vs_gguf']:.3f}" if gguf else "-",
            "<= 3 s",
            w["load_s"] <= 3.0,
        )
        bytecode = w.get("import_with_bytecode_s")
        row(
            "4 warm start",
            "  Python imports before it (torch, transformers, lib)",
            fmt_s(w["import_s"]),
            f"{fmt_s(bytecode)} with a bytecode cache" if bytecode else "-",
            "",
            "",
            None,
        )
    if "rerun" in items:
        r = items["rerun"]
        for key, label in (("default", "default settings"), ("show_all_threshold_0", "all, 0")):
            d = r[key]
            row(
                "5 rerun",
                f"graph page, step slider moves ({label}; "
                f"{r['prompt_tokens']}x{r['generated_tokens']} tokens)",
                fmt_s(d["graph_page_s"]),
                f"{fmt_s(d['trivial_script_s'])} trivial script",
                f"{d['ratio_vs_trivial']:.1f}",
                "<= 150 ms",
                d["graph_page_s"] <= 0.150,
            )
    if "step_move" in items:
        m = items["step_move"]
        size = f"{m['prompt_tokens']}x{m['generated_tokens']} tokens"
        row(
            "6 step move",
            f"graph step player in Chromium: key press to the new picture on screen ({size}; "
            "every step's picture is in the page)",
            f"{m['picture_s'] * 1000:.0f} ms",
            f"{fmt_s(m['rerun_after_settle_s'])} the server's rerun of the step (as every "
            "move waited before)",
            f"{m['picture_s'] / m['rerun_after_settle_s']:.2f}",
            "<= 50 ms",
            m["picture_s"] <= 0.050,
        )
        row(
            "6 step move",
            f"  then the server follows: key press to the rerun's end, {fmt_s(m['settle_s'])} "
            "of rest included / to the new caption",
            f"{fmt_s(m['step_move_s'])} / {fmt_s(m['step_shown_s'])}",
            f"{fmt_s(m['trivial_move_s'])} / {fmt_s(m['trivial_shown_s'])} a one-slider app",
            "",
            "",
            None,
        )
        row(
            "6 step move",
            "  the pictures the page holds (figure JSON, 40 steps at most)",
            fmt_b(m["frames_json_bytes"]),
            f"{fmt_b(m['frames_json_bytes_all_threshold_0'])} with every edge",
            "",
            "",
            None,
        )
    if "train_lab" in items:
        t = items["train_lab"]
        row(
            "7 train lab",
            f"the lab's model, epochs per second ({t['epochs']} epochs, 8 sentences)",
            f"{t['epochs_per_s']:.0f}/s",
            f"{t['torch_encoder_epochs_per_s']:.0f}/s torch nn.TransformerEncoder",
            f"{t['ratio_vs_torch']:.2f}",
            "",
            None,
        )
        ind, one, ref = t["induction"], t["one_layer"], t["reference"]
        seen = ind["phase_change_s"]
        jump = ref["jump"]
        row(
            "7 train lab",
            f"induction lab, wall time to the phase change ({ind['steps']} steps; best "
            f"induction {ind['best_induction']:.2f})",
            fmt_s(seen) if seen else "not reached",
            f"reference attention-only model: {fmt_s(jump['s'])} (step {jump['step']})"
            if jump
            else "reference attention-only model: no jump",
            f"{seen / jump['s']:.2f}" if seen and jump else "",
            "<= 10 s",
            None if seen is None else seen <= 10,
        )
        row(
            "7 train lab",
            "  same with one layer (no induction circuit possible)",
            f"best induction {one['best_induction']:.2f}",
            f"in {fmt_s(one['total_s'])}",
            "",
            "",
            None,
        )
    if "atlas" in items:
        a = items["atlas"]
        i = a["ingest"]
        row(
            "8 atlas",
            f"ingest corpus texts ({i['tokens']:,} tokens -> {i['fingerprints']:,} "
            "fingerprints in SQLite)",
            f"{i['tokens'] / i['ours_s']:.0f} tokens/s",
            f"{i['tokens'] / i['plain_s']:.0f} tokens/s plain SDPA forward, same windows",
            f"{i['ours_s'] / i['plain_s']:.2f}",
            "",
            None,
        )
        for n, d in a["discovery"].items():
            if not n.isdigit():
                continue  # the warm-up run (numba's compile), kept in the JSON
            row(
                "8 atlas",
                f"discovery on {int(n):,} fingerprints (fresh process; {d['n_clusters']} families)",
                f"{fmt_s(d['wall_s'])}, {fmt_b(d['peak_rss_bytes'])} peak",
                f"fit {fmt_s(d['timings_s']['fit_s'])}, place {fmt_s(d['timings_s']['place_s'])}",
                "",
                "",
                None,
            )
        m = a["map"]
        row(
            "8 atlas",
            f"map of {m['points']:,} points: build the figure / JSON / Chromium draws it",
            f"{fmt_s(m['build_s'])} / {fmt_b(m['json_bytes'])} / {m['draw_ms']:.0f} ms",
            f"{m['draw_small_ms']:.0f} ms to draw 1,000 points",
            f"{m['draw_ms'] / m['draw_small_ms']:.1f}",
            "",
            None,
        )
    if "classroom" in items:
        c = items["classroom"]
        row(
            "9 classroom",
            f"{c['students']} students press Generate together ({c['new_tokens']} tokens, "
            "each their own prompt): p50 / p95 to done, batched",
            f"{fmt_s(c['batched_p50_s'])} / {fmt_s(c['batched_p95_s'])}",
            f"{fmt_s(c['solo_s'])} one alone; one after another "
            f"{fmt_s(c['serial_p50_s'])} / {fmt_s(c['serial_p95_s'])}",
            f"{c['p95_vs_solo']:.2f}",
            "p95 <= 3x alone",
            c["p95_vs_solo"] <= 3.0,
        )
        row(
            "9 classroom",
            "  first token on screen (the slowest student) / peak RSS of the process",
            f"{fmt_s(c['batched_first_token_max_s'])} / {fmt_b(c['peak_rss_bytes'])}",
            f"{c['batched_forward_passes']} forward passes for the class",
            "",
            "<= 1 s",
            c["batched_first_token_max_s"] <= 1.0,
        )
    if "autoplay" in items:
        a = items["autoplay"]
        lo, hi = (k for k in a if k.isdigit())
        row(
            "10 autoplay",
            f"autoplay tick (the scheduler's next token + the page's two distributions), at "
            f"{hi} tokens / at {lo} ({a['prompt_tokens']}-token prompt)",
            f"{fmt_s(a[hi]['kept'])} / {fmt_s(a[lo]['kept'])}",
            f"{fmt_s(a[hi]['replay'])} / {fmt_s(a[lo]['replay'])} replaying the run "
            f"({a['replay_growth']:.1f}x)",
            f"{a['kept_growth']:.2f}",
            "<= 1.5x",
            a["kept_growth"] <= 1.5,
        )
    if "startup" in items:
        s = items["startup"]["start"]
        row(
            "11 startup",
            "`uv run streamlit run main.py` to the Welcome page drawn in Chromium (converted "
            "model, warm disk)",
            fmt_s(s["welcome_s"]),
            f"{fmt_s(s['trivial_s'])} a one-line app",
            f"{s['welcome_s'] / s['trivial_s']:.2f}",
            "<= 3 s",
            s["welcome_s"] <= 3.0,
        )
        row(
            "11 startup",
            "  then Generate at once: the prompt box on screen / the model loaded (button on)",
            f"{fmt_s(s['prompt_s'])} / {fmt_s(s['generate_s'])}",
            f"server healthy after {fmt_s(s['health_s'])}",
            "",
            "<= 5 s",
            s["generate_s"] <= 5.0,
        )
        for r in items["startup"]["imports"]:
            row(
                "11 imports",
                f"  opening {r['page']} (fresh process, no run yet) imports",
                ", ".join(r["added"]) or "nothing heavy",
                fmt_s(r["open_s"]),
                "",
                "",
                None,
            )
    if "patching" in items:
        p = items["patching"]
        row(
            "13 patching",
            f"activation patching, residual stream, {p['layers']} layers x {p['positions']} "
            f"positions ({p['patched_runs']} patched runs), batched 32 a pass",
            fmt_s(p["batched_s"]),
            f"{fmt_s(p['one_by_one_s'])} the same passes one by one (same numbers to "
            f"{p['max_difference']:.0e})",
            f"{p['ratio']:.2f}",
            "<= 0.5",
            p["ok"],
        )
    if "serving" in items:
        s = items["serving"]

        def tps(k: str) -> str:
            return f"{s[k]['tokens_per_s_per_core']:.1f} tokens/s/core"

        base = s["in_process"]["tokens_per_s_per_core"]
        what = f"{s['students']} students x {s['new_tokens']} tokens through the service"
        if "replicas_2" in s:
            row(
                "12 serving",
                f"{what}: Ray Serve, 2 replicas x 1 thread (HTTP)",
                tps("replicas_2"),
                f"{tps('in_process')} the app's batch in process (1 thread)",
                f"{s['replicas_2']['tokens_per_s_per_core'] / base:.2f}",
                "",
                None,
            )
        row(
            "12 serving",
            f"{what}: one process x 1 thread (HTTP)",
            tps("service"),
            f"{tps('in_process')} in process",
            f"{s['service']['tokens_per_s_per_core'] / base:.2f}",
            "",
            None,
        )
    return rows


def print_table(rows: list[dict]) -> None:
    cols = ["item", "what", "ours", "baseline", "ratio", "target", "ok"]
    cells = [
        [str(r[c]) if c != "ok" else {True: "yes", False: "NO", None: ""}[r[c]] for c in cols]
        for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    size = sizes(args.quick)
    repeats = args.repeats or (1 if args.quick else 5)
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(args.threads)
    from bench import (
        atlas,
        autoplay,
        capture,
        classroom,
        graph,
        memory,
        patching,
        rerun,
        serving,
        startup,
        step_move,
        train_lab,
        warm_start,
    )
    from bench.texts import prompt_text
    from lib.model.generation import generate
    from lib.model.loading import load_model

    info = machine()
    log(f"loading the bundled model ({info['cores']} cores, {args.threads} torch thread(s))")
    lm = load_model()
    new = size["new_tokens"]
    rerun_prompt = prompt_text(lm.tokenizer, size["rerun_prompt"])
    quick_tokens = new if args.quick else None  # the full run: Generate's default

    def run_memory() -> dict:
        return memory.run(size["memory_prompt"], new, args.threads, size["seed_rss"], log)

    def run_warm_start() -> dict:
        return warm_start.run(args.threads, repeats, size["gguf_repeats"], size["bytecode"], log)

    # The items that wait on child processes or a browser. A full run measures every item in
    # turn, in the order of the table; the smoke run (`--quick`, whose numbers mean nothing)
    # starts these at once, beside the rest.
    waiting = {
        "step_move": lambda: step_move.run(
            rerun_prompt, 2 if args.quick else repeats * 3, log, quick_tokens
        ),
        "classroom": lambda: classroom.run(*size["class"], 0, args.threads, log),
        "memory": run_memory,
        "warm_start": run_warm_start,
        "startup": lambda: startup.run(args.quick, max(2, repeats // 2), log),
        "serving": lambda: serving.run(*size["serving"], args.quick, log),
    }
    if args.quick:  # the smoke run: the lab beside the rest too, and the atlas (below)
        waiting["train_lab"] = lambda: train_lab.run(True, repeats, log)
    items: dict = {}
    with ThreadPoolExecutor(len(waiting) + 1 if args.quick else 1) as pool:
        beside = {name: pool.submit(fn) for name, fn in waiting.items()} if args.quick else {}
        try:
            items["capture"] = capture.run(lm, size["capture_prompts"], new, repeats, log)
            if args.quick:  # only now: capture switches the shared model's attention code
                beside["atlas"] = pool.submit(atlas.run, lm, True, repeats, args.threads, log)
            log("graph: generating the run to draw")
            result = generate(lm, prompt_text(lm.tokenizer, size["graph_prompt"]), new)
            items["graph"] = graph.run(result, max(repeats, 5), max(1, repeats // 2), log)
            moves, ticks = (2, 1) if args.quick else (max(3, repeats * 6), max(3, repeats))
            items["rerun"] = rerun.run(rerun_prompt, new, moves, log)
            items["autoplay"] = autoplay.run(lm, size["autoplay"], ticks, log)
            items["patching"] = patching.run(lm, args.quick, max(1, repeats // 2), log)
            if not args.quick:
                items["step_move"] = waiting.pop("step_move")()
            if not args.quick:
                items["atlas"] = atlas.run(lm, False, repeats, args.threads, log)
                del lm, result
                items["train_lab"] = train_lab.run(False, repeats, log)
            if args.quick:
                items |= {name: future.result() for name, future in beside.items()}
            else:
                items |= {name: fn() for name, fn in waiting.items()}
        finally:  # a failure above does not leave the others running on
            pool.shutdown(cancel_futures=True)

    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    rows = table(items)
    report = {
        "command": "uv run python -m bench" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "repeats": repeats,
        "threads": args.threads,
        "machine": info,
        "elapsed_s": time.perf_counter() - t_start,
        "table": rows,
        "items": items,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print_table(rows)
    print(f"\nsaved {args.out} ({report['elapsed_s']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
