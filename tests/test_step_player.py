"""The graph's step player: which steps' pictures travel, and that each picture is the
graph the page draws at that step."""

from __future__ import annotations

from app.widgets.step_player import FRAMES, frame_window
from lib.analysis.attention import all_steps
from lib.model.generation import generate
from lib.viz.graph import CURRENT_COLOUR, step_figures
from tests.test_app import edge_count, marker_colours
from tests.tiny import tiny_lm


def test_the_window_holds_the_current_step_and_moves_in_blocks():
    assert list(frame_window(20, 7, FRAMES)) == list(range(1, 21))  # a short run: every step
    for n in (41, 100, 256):
        windows = set()
        for current in range(1, n + 1):
            w = frame_window(n, current, FRAMES)
            assert len(w) == FRAMES and w[0] >= 1 and w[-1] <= n
            assert current - w[0] >= min(FRAMES // 4, current - 1)  # room either way
            assert w[-1] - current >= min(FRAMES // 4, n - current)
            windows.add((w[0], w[-1]))
        assert len(windows) <= n // (FRAMES // 2) + 1  # not one per step: a few cache entries


def test_each_picture_marks_its_own_step_and_holds_its_lines():
    lm = tiny_lm()
    r = generate(lm, "the old wizard walked through the forest", 5)
    steps = all_steps(r)
    n_in = len(r.prompt_labels)
    frames = step_figures(r, steps, range(1, r.n_steps + 1), 0.0, None, False, None, 0, n_in)
    assert sorted(frames, key=int) == [str(k) for k in range(1, r.n_steps + 1)]
    for k, fig in frames.items():
        colours = marker_colours(fig, "output")
        assert [i for i, c in enumerate(colours) if c == CURRENT_COLOUR] == [int(k) - 1]
        # softmax weights are all positive: at threshold 0, step k draws a line to every
        # prompt token and to each of the k - 1 tokens written before it
        assert edge_count(fig) == n_in + int(k) - 1
