"""The figure and table builders (lib/viz) on hand-built inputs with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lib.analysis.attention import all_steps
from lib.analysis.fingerprint import DIMENSIONS, Fingerprints
from lib.analysis.head_roles import ROLES, HeadRoles
from lib.analysis.logit_lens import LogitLens
from lib.analysis.next_token import apply_min_p, apply_temperature, apply_top_k, apply_top_p
from lib.config import MAX_LINE_WIDTH, MIN_LINE_WIDTH
from lib.labels import TokenSplit
from lib.model.result import GenerationResult, RunSettings
from lib.viz import fingerprint as vf
from lib.viz import graph as vg
from lib.viz import head_roles as vh
from lib.viz import lens as vl
from lib.viz import matrices as vm
from lib.viz import tables as vt
from lib.viz import text as vx
from lib.viz import weights as vw


def hand_result(bos: int = 0) -> GenerationResult:
    """Prompt "a b c" (3 tokens) then "d e": 2 steps, 1 layer, 2 heads, weights by hand."""
    att = np.zeros((2, 1, 2, 4), dtype=np.float32)
    att[0, 0, 0, :3] = [0.6, 0.3, 0.1]  # step 0: query at position 2 sees keys 0..2
    att[0, 0, 1, :3] = [0.2, 0.2, 0.6]
    att[1, 0, 0, :4] = [0.5, 0.1, 0.1, 0.3]  # step 1: query at position 3 sees keys 0..3
    att[1, 0, 1, :4] = [0.1, 0.1, 0.2, 0.6]
    return GenerationResult(
        model_spec="hand",
        model_name="hand",
        prompt="a b c",
        token_ids=np.array([10, 11, 12, 13, 14]),
        labels=("a", "b", "c", "d", "e"),
        texts=("a", "·b", "·c", "·d", "↵"),
        prompt_len=3,
        bos_offset=bos,
        attention=att,
        top_ids=np.array([[13, 20], [14, 21]]),
        top_probs=np.array([[0.7, 0.2], [0.4, 0.3]], dtype=np.float32),
        chosen_prob=np.array([0.7, 0.4], dtype=np.float32),
        entropy=np.array([1.0, 2.0], dtype=np.float32),
        stop_reason="max_tokens",
        settings=RunSettings(max_new_tokens=2),
    )


# ---- tables -----------------------------------------------------------------------------


def test_token_table_marks_parts_and_only_generated_probabilities():
    df = vt.token_table(hand_result(bos=1))
    assert df["part"].tolist() == ["prompt (hidden BOS)", "prompt", "prompt"] + ["generated"] * 2
    assert df["token"].tolist() == ["a", "·b", "·c", "·d", "↵"]  # display mode
    assert np.isnan(df["probability"][:3]).all()
    assert df["probability"][3:].tolist() == pytest.approx([0.7, 0.4])


def test_strongest_connections_sorted_by_raw_weight():
    r = hand_result()
    step = all_steps(r)[1]  # mean of the heads at step 1: [0.3, 0.1, 0.15, 0.45]
    df = vt.strongest_connections(r, step, n=3)
    assert df["to token"].tolist() == ["d", "a", "c"]
    assert df["raw"].tolist() == pytest.approx([0.45, 0.3, 0.15])
    assert df["part"].tolist() == ["generated", "prompt", "prompt"]


def test_tokenizer_table_parts():
    split = TokenSplit(
        np.array([1, 2, 3]), ("x", "Ġy", "z"), ("x", "·y", "z"), np.array([True, False, False])
    )
    df = vt.tokenizer_table(split, prompt_len=2)
    assert df["part"].tolist() == ["prompt", "prompt", "generated"]
    assert df.columns.tolist()[:3] == ["position", "part", "id"]


# ---- the graph --------------------------------------------------------------------------


def test_select_edges_threshold_and_selection():
    r = hand_result()
    steps = all_steps(r)
    # Step 1, mean row [0.3, 0.1, 0.15 | 0.45]: prompt part normalised by its sum 0.55.
    e = vg.select_edges(steps, 1, threshold=0.2)
    prompt = e.kind == 0
    assert e.src[prompt].tolist() == [0, 2]  # 0.3 / 0.55 and 0.15 / 0.55 pass, 0.1 / 0.55 not
    assert e.weight[prompt] == pytest.approx([0.3 / 0.55, 0.15 / 0.55], rel=1e-5)
    assert e.raw[prompt] == pytest.approx([0.3, 0.15])
    assert (e.kind == 1).sum() == 1 and e.weight[e.kind == 1][0] == pytest.approx(1.0)
    one = vg.select_edges(steps, 1, threshold=0.0, selected=("input", 1))
    assert one.src.tolist() == [1, 1] and one.dst.tolist() == [0, 1]  # token 1 -> each step


def test_top_k_keeps_the_strongest_lines_of_each_kind_whatever_the_threshold():
    r = hand_result()
    steps = all_steps(r)
    # Step 1's prompt part is [0.3, 0.1, 0.15] / 0.55: the two strongest are tokens 0 and 2.
    e = vg.select_edges(steps, 1, threshold=0.99, top_k=2)
    assert e.src[e.kind == 0].tolist() == [0, 2]
    assert e.src[e.kind == 1].tolist() == [0]  # only one earlier generated token exists
    alone = vg.select_edges(steps, 1, threshold=0.99)  # the threshold alone: no prompt line
    assert (alone.kind == 0).sum() == 0


def _drawn_widths(fig) -> dict[tuple[float, float], float]:
    """(x, y) of each drawn line's start -> its width, from the figure's own traces."""
    out = {}
    for t in fig.data:
        if t.mode != "lines" or t.x is None or t.showlegend:
            continue
        xs, ys = np.asarray(t.x, float), np.asarray(t.y, float)
        for i in range(0, len(xs), 3):
            out[(float(xs[i]), round(float(ys[i]), 4))] = float(t.line.width)
    return out


def test_line_width_is_one_fixed_scale_across_steps():
    # Seed 000: MIN_LINE_WIDTH at weight 0 up to MAX_LINE_WIDTH at weight 1, linear; both
    # ends drawn exactly, every weight within half a step of its exact width.
    assert float(vg.line_width(0.0)) == MIN_LINE_WIDTH == 0.5
    assert float(vg.line_width(1.0)) == MAX_LINE_WIDTH == 3.0
    w = np.linspace(0, 1, 1001)
    exact = MIN_LINE_WIDTH + (MAX_LINE_WIDTH - MIN_LINE_WIDTH) * w
    step = (MAX_LINE_WIDTH - MIN_LINE_WIDTH) / vg.WIDTH_STEPS
    assert np.abs(vg.line_width(w) - exact).max() <= step / 2 + 1e-9

    # Two steps drawn apart, whose strongest lines differ (0.9 and 0.3): a 0.3 line is as
    # wide on both, not blown up to the full width where it is its step's strongest.
    def widths(weights):
        e = vg.GraphEdges(
            np.array([0, 0], np.int8),
            np.array([0, 1]),
            np.array([0, 0]),
            np.array(weights, np.float32),
            np.array(weights, np.float32),
        )
        return _drawn_widths(vg.attention_graph(("a", "b"), ("c",), e, 0))

    first, second = widths([0.9, 0.3]), widths([0.3, 0.25])
    y_a, y_b = 1.0, 0.0
    assert first[(vg.X_IN, y_b)] == pytest.approx(second[(vg.X_IN, y_a)])  # both 0.3
    assert second[(vg.X_IN, y_a)] < MAX_LINE_WIDTH / 2
    assert first[(vg.X_IN, y_a)] > 2.5  # 0.9


def test_graph_places_tokens_at_seed_positions():
    r = hand_result()
    fig = vg.attention_graph(
        ("a", "b", "c"),
        r.generated_labels,
        vg.GraphEdges(
            *(np.zeros(0, t) for t in (np.int8, np.int64, np.int64, np.float32, np.float32))
        ),
        0,
    )
    lo, hi = fig.layout.xaxis.range
    inputs = next(t for t in fig.data if t.name == "input")
    outputs = next(t for t in fig.data if t.name == "output")
    assert (inputs.x[0] - lo) / (hi - lo) == pytest.approx(0.1)
    assert (outputs.x[0] - lo) / (hi - lo) == pytest.approx(0.9)
    assert list(inputs.y) == pytest.approx(np.linspace(1, 0, 3).tolist())
    legend = [t for t in fig.data if t.showlegend]
    assert [t.name.split(":")[0] for t in legend] == [f"weight {w:g}" for w in vg.LEGEND_WEIGHTS]
    for t, w in zip(legend, vg.LEGEND_WEIGHTS, strict=True):  # the legend names what it draws
        assert t.name.endswith(f"{t.line.width:g} px")
        assert t.line.width == pytest.approx(MIN_LINE_WIDTH + 2.5 * w)


def test_window_edges_renumbers_prompt_tokens():
    e = vg.GraphEdges(
        np.array([0, 0, 0, 1], np.int8),
        np.array([1, 5, 9, 0]),
        np.array([0, 0, 0, 1]),
        np.ones(4, np.float32),
        np.ones(4, np.float32),
    )
    w = vg.window_edges(e, 4, 8)
    assert w.kind.tolist() == [0, 1] and w.src.tolist() == [1, 0]  # prompt 5 -> 1 in window


def test_selection_from_event():
    event = {"selection": {"points": [{"customdata": ["input", 2]}]}}
    assert vg.selection_from_event(event, 10, 5, lo=3) == ("input", 5)
    assert vg.selection_from_event(event, 4, 5, lo=3) is None  # out of range
    edge = {"selection": {"points": [{"customdata": ["edge", 0, 0.1, 0.1, "a", "b"]}]}}
    assert vg.selection_from_event(edge, 10, 5) is None
    assert vg.selection_from_event(None, 10, 5) is None
    assert vg.selection_from_event({"selection": {"points": []}}, 10, 5) is None


def test_graph_figure_has_markers_for_every_token_and_escapes_labels():
    r = hand_result()
    steps = all_steps(r)
    fig = vg.attention_graph(
        ("<b>", "b", "c"), r.generated_labels, vg.select_edges(steps, 1, 0.0), 1
    )
    spec = json.loads(fig.to_json())
    inputs = next(t for t in spec["data"] if t.get("name") == "input")
    assert inputs["text"] == ["&lt;b&gt;", "b", "c"]
    outputs = next(t for t in spec["data"] if t.get("name") == "output")
    assert outputs["marker"]["color"] == [vg.PAST_COLOUR, vg.CURRENT_COLOUR]


# ---- matrices ---------------------------------------------------------------------------


def test_matrix_view_and_csv():
    m = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=np.float32)
    v = vm.view(m, np.array([1, 2]), ("a", "b", "c"), hide_first=True)
    assert v.key_pos.tolist() == [1, 2]
    np.testing.assert_allclose(v.values, [[1.0, 0.0], [0.375, 0.625]], rtol=1e-6)
    lines = v.to_csv().splitlines()
    assert lines[0] == "query \\ key,1: b,2: c"
    assert lines[1].startswith("1: b,1.0")
    assert vm.matrix_file_name("k", 3, None, True, True) == (
        "attention-k-layer3-all-heads-captured-sink-hidden.csv"
    )


# ---- head roles -------------------------------------------------------------------------


def hand_roles() -> HeadRoles:
    scores = np.zeros((len(ROLES), 2, 3), dtype=np.float32)
    scores[ROLES.index("induction")] = [[0.1, 0.9, 0.2], [0.3, 0.0, 0.5]]
    scores[ROLES.index("duplicate_token")] = np.nan
    return HeadRoles(scores, np.full(4, 0.05, np.float32), np.arange(6), np.zeros(0), False)


def test_grid_frame_picked_head_and_strongest_heads():
    roles = hand_roles()
    df = vh.grid_frame(roles, "induction")
    assert len(df) == 6
    assert df.loc[(df.layer == 0) & (df["head"] == 1), "score"].item() == pytest.approx(0.9)
    assert vh.picked_head({"selection": {vh.PICK: [{"layer": 1, "head": 2}]}}, 2, 3) == (1, 2)
    assert vh.picked_head({"selection": {vh.PICK: [{"layer": 5, "head": 0}]}}, 2, 3) is None
    assert vh.picked_head({"selection": {vh.PICK: []}}, 2, 3) is None
    best = vh.strongest_heads(roles, per_role=2)
    induction = best[best.role == "Induction"]
    assert list(zip(induction.layer, induction["head"], strict=True)) == [(0, 1), (1, 2)]
    assert "Duplicate token (copying)" not in set(best.role)  # no score: left out
    assert "layer 0 head 1 (0.900)" in vx.roles_caption(roles, "induction", False)


# ---- logit lens, fingerprints, weights -------------------------------------------------


def test_lens_table_and_overview():
    top_ids = np.array([[[5, 6], [7, 5]]])  # one step, readouts: embeddings, layer 0
    lens = LogitLens(
        top_ids=top_ids,
        top_probs=np.array([[[0.5, 0.2], [0.9, 0.05]]], dtype=np.float32),
        final_ids=np.array([7]),
        final_prob=np.array([[0.1, 0.9]], dtype=np.float32),
        final_rank=np.array([[3, 1]]),
        settles_at=np.array([1]),
    )
    names = {5: "five", 6: "six", 7: "seven"}
    df = vl.lens_table(lens, 0, names.get)
    assert df["after"].tolist() == ["embeddings", "layer 0"]
    assert df["top prediction"].tolist() == ["five", "seven"]
    assert df["rank of final token"].tolist() == [3, 1]
    assert df["next 4"].tolist() == ["six", "five"]
    data = vl.lens_overview(lens, ["seven"]).to_dict()["datasets"]
    assert len(next(iter(data.values()))) == 2  # one cell per readout


def test_fingerprint_table_and_strip():
    v = np.zeros((2, len(DIMENSIONS)), dtype=np.float32)
    v[:, 0] = [1.0, 0.2]
    fp = Fingerprints(v, ("syntax_floor", "diffuse"), False)
    df = vf.fingerprint_table(fp, ["x", "y"])
    assert df.columns.tolist()[:3] == ["token", "zone", "local_mass"]
    assert df["zone"].tolist() == ["syntax_floor", "diffuse"]
    chart = vf.zone_strip(fp, ["x", "y"]).to_dict()
    rows = next(iter(chart["datasets"].values()))
    assert [(r["line"], r["col"]) for r in rows] == [(0, 0), (0, 1)]


def test_weight_views_where_tokens_appear():
    assert vw.appears_in(np.array([1, 2, 3]), {1, 2}, {2, 3}) == ["prompt", "both", "generated"]


# ---- captions ---------------------------------------------------------------------------


def test_captions_follow_the_numbers():
    assert (
        vx.describe_aggregation(30, 9, None, None) == "averaged over all 9 heads of all 30 layers"
    )
    assert vx.describe_aggregation(30, 9, 3, None) == "averaged over all 9 heads of layer 3"
    assert vx.describe_aggregation(30, 9, 3, 2) == "from head 2 of layer 3"
    assert vx.count(1, "token") == "1 token" and vx.count(2048, "token") == "2,048 tokens"
    r = hand_result(bos=1)
    assert "BOS token the tokenizer added is hidden" in vx.graph_caption(
        r, None, None, True, 0.05, 3
    )
    assert "(3 shown)" in vx.graph_caption(r, None, None, False, 0.05, 3)


def test_filter_notes_count_kept_tokens_and_mass():
    p = np.array([0.5, 0.2, 0.2, 0.06, 0.04], dtype=np.float32)
    logits = np.log(p)
    fs = (
        apply_temperature(logits, 2.0),
        apply_top_k(p, 2),
        apply_top_p(p, 0.6),
        apply_min_p(p, 0.2),
    )
    notes = vx.filter_notes(p, 1.8, *fs, (2.0, 2, 0.6, 0.2))
    assert "(flatter)" in notes[0]
    assert notes[1].startswith("Keeps the 3 most likely of 5 tokens; their 90.0%")  # a tie kept
    assert "2 tokens holding 70.0%" in notes[2]
    assert "0.2 × 0.500 = 0.1000" in notes[3] and "3 tokens holding 90.0%" in notes[3]
    assert vx.filter_notes(p, 1.8, *fs[:1], apply_top_k(p, 0), *fs[2:], (2.0, 0, 0.6, 0.2))[
        1
    ].startswith("Off")
