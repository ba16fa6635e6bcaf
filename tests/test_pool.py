"""The class's pool of induction-lab runs: the SQLite pool, its offline page, and three
students' sessions pooling their runs for the teacher's view (AppTest)."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from lib.analysis.head_roles import ROLES
from lib.train.induction import InductionConfig, InductionHistory
from lib.train.pool import MAX_POINTS, ClassPool, clean_name
from lib.viz.export import class_page
from lib.viz.training import MAX_DRAWN, pool_chart
from tests.apphelpers import assert_ok, button
from tests.test_atlas import at_once


def history(jump_at: int | None, evals: int = 8, every: int = 25) -> InductionHistory:
    """A made-up history whose best induction score jumps from 0.1 to 0.9 at evaluation
    `jump_at` (never when None), on a 2-layer, 2-head model."""
    steps = np.arange(evals) * every
    best = np.full(evals, 0.1, np.float32)
    if jump_at is not None:
        best[jump_at:] = 0.9
    scores = np.zeros((evals, len(ROLES), 2, 2), np.float32)
    scores[:, ROLES.index("induction"), 1, 0] = best
    loss = np.linspace(4.0, 1.0, evals).astype(np.float32)
    return InductionHistory(steps, loss + 0.2, loss, scores)


def test_a_pooled_run_reads_back_with_its_phase_change_by_the_labs_rule(tmp_path):
    pool = ClassPool(tmp_path / "pool.sqlite")
    h = history(jump_at=3)
    assert h.phase_change() == 3  # the lab's own rule: the first evaluation at >= 0.5
    rid = pool.add("s1", "Ada", InductionConfig(seed=7), h)
    (run,) = pool.runs()
    assert (run.id, run.name, run.seed, run.phase_step) == (rid, "Ada", 7, 75)
    np.testing.assert_array_equal(run.steps, h.steps)
    np.testing.assert_allclose(run.loss_second, h.loss_second)
    np.testing.assert_allclose(run.best_induction, [0.1] * 3 + [0.9] * 5, atol=1e-6)
    assert pool.add("s1", "", InductionConfig(), history(None)) == rid + 1
    assert pool.runs()[1].name == f"Run {rid + 1}" and pool.runs()[1].phase_step is None


def test_only_its_owner_takes_a_run_back(tmp_path):
    pool = ClassPool(tmp_path / "pool.sqlite")
    a = pool.add("ann", "Ann", InductionConfig(seed=1), history(2))
    b = pool.add("bob", "Bob", InductionConfig(seed=2), history(4))
    assert pool.mine("ann") == [a] and pool.mine("bob") == [b]
    assert not pool.remove("bob", a)  # not his
    assert pool.remove("ann", a) and [r.id for r in pool.runs()] == [b]
    assert not pool.remove("ann", a)  # gone already


def test_names_are_one_short_printable_line():
    assert clean_name("  Grace\n\tHopper\u202e\x00 ", "Run 1") == "Grace Hopper"
    assert clean_name("x" * 100, "Run 1") == "x" * 40
    assert clean_name("\u200b\n ", "Run 4") == "Run 4"
    assert clean_name("<b>Alan</b>", "Run 1") == "<b>Alan</b>"  # kept as text, shown as text


def test_thirty_students_pooling_at_once_lose_nothing(tmp_path):
    pool = ClassPool(tmp_path / "pool.sqlite")
    errors = at_once(
        30, lambda i: pool.add(f"s{i}", f"S{i}", InductionConfig(seed=i), history(i % 8))
    )
    assert errors == []
    runs = pool.runs()
    assert sorted(r.seed for r in runs) == list(range(30)) and len({r.id for r in runs}) == 30


def test_the_offline_page_draws_every_run_and_escapes_names(tmp_path):
    pool = ClassPool(tmp_path / "pool.sqlite")
    pool.add("a", "<b>Alan</b>", InductionConfig(seed=1), history(2))
    pool.add("b", "Ada", InductionConfig(seed=2), history(None))
    runs = pool.runs()
    page = class_page(runs, "2 runs")
    assert "<b>Alan</b>" not in page and "&lt;b&gt;Alan&lt;/b&gt;" in page
    assert "<svg" in page and "<script" not in page  # a picture: nothing to fetch or run
    assert page.count("<tr>") == 3  # the header and two runs
    assert "phase change came in 1 of them, at step 50" in page
    spec = pool_chart(runs).to_dict()
    (dots,) = [d for d in inline_values(spec) if len(d) == 1]  # one run changed phase
    assert (dots[0]["step"], dots[0]["score"]) == (50, pytest.approx(0.9))
    assert dots[0]["run"].startswith(f"#{runs[0].id} ")  # on Alan's curve, not Ada's


def test_three_students_pool_their_runs_and_the_teacher_sees_three_curves(
    smollm2, tmp_path, monkeypatch
):
    monkeypatch.setenv("TAV_CLASS_POOL", str(tmp_path / "class.sqlite"))
    trained = {}
    for seed, name in ((1, "Ada"), (2, "Grace"), (3, "<b>Alan</b>")):
        at = AppTest.from_file("../main.py", default_timeout=240)
        at.run()
        at.switch_page("lessons/induction.py").run()
        at.number_input(key="ind_steps__w").set_value(50).run()
        at.number_input(key="ind_seed__w").set_value(seed).run()
        button(at, "Train").click().run()
        assert_ok(at)
        at.text_input(key="ind_pool_name__w").input(name).run()
        button(at, "Add my run to the class pool").click().run()
        assert_ok(at)
        assert any(b.label.startswith("In the pool as run #") for b in at.button)
        trained[name] = at.session_state["ind_lab"].history

    # A fourth student who kept Ada's seed trains Ada's run again, curve for curve: told.
    twin = AppTest.from_file("../main.py", default_timeout=240)
    twin.run()
    twin.switch_page("lessons/induction.py").run()
    twin.number_input(key="ind_steps__w").set_value(50).run()
    twin.number_input(key="ind_seed__w").set_value(1).run()
    button(twin, "Train").click().run()
    assert_ok(twin)
    np.testing.assert_array_equal(twin.session_state["ind_lab"].history.loss_second,
                                  trained["Ada"].loss_second)  # fmt: skip
    assert any(i.value.startswith("The run #1 in the pool has this seed") for i in twin.info)

    teacher = AppTest.from_file("../main.py", default_timeout=240)
    teacher.run()
    teacher.switch_page("lessons/class_lab.py").run()
    assert_ok(teacher)
    (chart,) = teacher.get("vega_lite_chart")
    curves = max(chart_data(chart), key=len)  # the lines' data (the dots' is smaller)
    by_run = {label: rows for label, rows in curves.groupby("run", sort=False)}
    assert len(by_run) == 3  # three curves
    for label, got in by_run.items():
        name = re.match(r"#\d+ (.*) \(seed \d\)$", label).group(1)
        h = trained[name]  # each curve is that student's own history, every evaluation
        assert got["step"].tolist() == h.steps.tolist()
        np.testing.assert_allclose(got["loss"], h.loss_second, rtol=1e-6)
    table = teacher.dataframe[0].value
    assert sorted(table["seed"]) == [1, 2, 3]
    assert set(table["name"]) == {"Ada", "Grace", "<b>Alan</b>"}
    assert any("3 runs in the pool" in c.value for c in teacher.caption)

    # A pool that cannot be opened (here a folder where the file should be): a message.
    monkeypatch.setenv("TAV_CLASS_POOL", str(tmp_path))
    teacher.run()
    assert_ok(teacher)
    assert any("class pool cannot be opened" in w.value for w in teacher.warning)


def chart_data(chart) -> list[pd.DataFrame]:
    """Every dataset of a drawn Vega-Lite chart: those Streamlit sent apart (Arrow) and
    those inline in the spec."""
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets]
    return frames + [pd.DataFrame(v) for v in inline_values(json.loads(chart.proto.spec))]


def inline_values(spec) -> list[list[dict]]:
    """Every `data: {values: [...]}` and named dataset anywhere in a Vega-Lite spec."""
    found = []
    if isinstance(spec, dict):
        if isinstance(spec.get("values"), list):
            found.append(spec["values"])
        found += list(spec.get("datasets", {}).values())
        for k, v in spec.items():
            if k not in ("values", "datasets"):
                found += inline_values(v)
    elif isinstance(spec, list):
        for v in spec:
            found += inline_values(v)
    return found


def test_a_long_run_is_thinned_with_its_phase_change_kept_and_drawn(tmp_path):
    pool = ClassPool(tmp_path / "pool.sqlite")
    pool.add("s", "Long", InductionConfig(steps=20_000, eval_every=20), history(517, 1001, 20))
    (run,) = pool.runs()
    assert len(run.steps) <= MAX_POINTS and run.steps[0] == 0 and run.steps[-1] == 20_000
    assert run.phase_step == 517 * 20 and run.phase_step in run.steps.tolist()
    assert np.all(np.diff(run.steps) > 0)
    # 40 such runs keep 8,000 points: the chart draws each with fewer, its phase kept
    many = [dataclasses.replace(run, id=i) for i in range(40)]
    spec = pool_chart(many).to_dict()  # as the projector view and the offline page write it
    lines, dots = sorted(inline_values(spec), key=len)[::-1][:2]
    assert 40 * 90 <= len(lines) <= MAX_DRAWN
    assert sorted(d["run"] for d in dots) == sorted({r["run"] for r in lines})  # one each
    assert all(d["step"] == run.phase_step for d in dots)
    assert sum(r["step"] == run.phase_step for r in lines) == 40


def test_a_pool_written_by_another_version_still_reads(tmp_path):
    import sqlite3

    pool = ClassPool(tmp_path / "pool.sqlite")
    pool.add("s", "Ada", InductionConfig(seed=4), history(2))
    with sqlite3.connect(pool.path) as db:  # a field this version does not know
        (config,) = db.execute("SELECT config FROM pooled").fetchone()
        db.execute("UPDATE pooled SET config = ?", (json.dumps({**json.loads(config), "x": 1}),))
    assert pool.runs()[0].seed == 4
