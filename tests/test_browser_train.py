"""The training lab in a real browser: train, watch, download the model, load it elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from tests.browser import VEGA_DRAWN


def test_train_download_and_load_in_another_session(open_session, artifacts_dir, tmp_path):
    teacher = open_session("teacher", 1400, 1300)
    pg = teacher.page
    teacher.open_page("Train a transformer")
    teacher.click("button", "Train")
    expect(pg.get_by_text("Trained 200 epochs")).to_be_visible()
    expect(pg.locator(VEGA_DRAWN).nth(1)).to_be_visible()  # the heatmaps of the heads
    pg.screenshot(path=str(artifacts_dir / "8-train.png"), full_page=True)
    teacher.open_page("Use the trained model")
    expect(pg.get_by_test_id("stDataFrame").first).to_be_visible()
    with pg.expect_download(timeout=120_000) as info:
        pg.get_by_role("button", name="Download the model (safetensors)").click()
    saved = tmp_path / "model.safetensors"
    saved.write_bytes(Path(info.value.path()).read_bytes())

    student = open_session("student", 1400, 1000)  # another session: nothing trained there
    student.open_page("Use the trained model")
    expect(
        student.page.get_by_text("Train a model on the Train a transformer page")
    ).to_be_visible()
    upload = student.page.locator("input[type=file]")
    student.act(lambda: upload.set_input_files(str(saved)))
    expect(student.page.get_by_text("Loaded: the model")).to_be_visible()
    expect(student.page.get_by_test_id("stDataFrame").first).to_be_visible()
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all")
    student.act(lambda: upload.set_input_files(str(junk)))
    expect(student.page.get_by_text("not a safetensors file")).to_be_visible()
    expect(student.page.get_by_test_id("stDataFrame").first).to_be_visible()  # nothing lost


def test_long_training_shows_progress_and_stops_keeping_what_it_learned(open_session):
    s = open_session("stopper")
    s.open_page("Induction heads")
    mark = s.start(lambda: s.page.get_by_role("button", name="Train").click())
    expect(s.page.get_by_text("Training:").first).to_be_visible(timeout=60_000)  # progress
    # While it trains, another session works and sees nothing of it.
    other = open_session("other")
    other.open_page("Induction heads")
    expect(other.page.get_by_role("button", name="Train")).to_be_enabled()
    expect(other.page.get_by_text("Training:")).to_have_count(0)
    expect(other.page.get_by_text("Stopped at step")).to_have_count(0)
    # The page's own Stop, not the one in Streamlit's header (shown while a script runs).
    stop = s.page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop")
    expect(stop).to_be_visible()  # still training
    s.act(lambda: stop.click())
    s.wait_run(mark)
    expect(s.page.get_by_text("Stopped at step")).to_be_visible()
    expect(s.page.locator(VEGA_DRAWN).first).to_be_visible()  # the curves so far are kept


def metric_value(page, label: str) -> float:
    box = page.get_by_test_id("stMetric").filter(has_text=label)
    return float(box.get_by_test_id("stMetricValue").inner_text().split()[0])


def test_train_it_then_look_inside_it(open_session, artifacts_dir):
    """The induction lab's model, trained here and opened in the lessons with one click:
    Head roles ranks an induction head first, and Ablate (which starts at that head)
    shows the repeated half's loss rise when it is switched off."""
    s = open_session("lab", 1400, 1300)
    pg = s.page
    s.open_page("Induction heads")
    s.click("button", "Train")  # the defaults: the phase change comes
    expect(pg.get_by_text("The best induction head passed 0.5")).to_be_visible()
    s.click("button", "Open it in the lessons")
    expect(pg.get_by_role("heading", name="Attention graph")).to_be_visible()
    expect(pg.get_by_text("Your induction model").first).to_be_visible()  # the sidebar
    s.open_page("Head roles")
    best = pg.get_by_text(re.compile(r"^Induction: the best head is layer \d+ head \d+"))
    layer, head = re.search(r"layer (\d+) head (\d+)", best.inner_text()).groups()
    pg.screenshot(path=str(artifacts_dir / "lab-head-roles.png"), full_page=True)
    s.open_page("Ablate a head")
    picked = pg.get_by_test_id("stMultiSelect").first
    expect(picked).to_contain_text(f"L{layer} H{head}")  # it starts at the top induction head
    plain = metric_value(pg, "Second repeat, all heads on")
    off = metric_value(pg, "Second repeat, heads switched off")
    assert off > plain + 0.5, (plain, off)  # the copying goes with the head
    pg.screenshot(path=str(artifacts_dir / "lab-ablation.png"), full_page=True)
    s.click("button", "Back to the bundled model")
    expect(pg.get_by_text("SmolLM2-135M-Instruct").first).to_be_visible()
