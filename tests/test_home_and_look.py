"""Seed 003's look and contents: the Welcome page, the navy theme and logo, every page's own
source at its end, and the token chips that never turn token text into markup."""

from __future__ import annotations

import ast
import tomllib
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.lessons import HOME, LESSONS, by_title
from lib.viz.token_chips import chips_caption, token_chips
from tests.apphelpers import ALL_PAGES, assert_ok, button

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "<img src=x onerror=alert(1)>"


# ---- the look ---------------------------------------------------------------------------


def test_theme_is_light_with_navy_primary():
    theme = tomllib.loads((ROOT / ".streamlit/config.toml").read_text())["theme"]
    assert theme["base"] == "light"
    assert theme["primaryColor"] == "#000080"


def test_logo_is_the_svg_main_py_names():
    assert 'st.logo(str(Path(__file__).parent / "assets" / "logo.svg")' in (
        ROOT / "main.py"
    ).read_text(encoding="utf-8")
    root = ET.parse(ROOT / "assets/logo.svg").getroot()  # well-formed, an <svg>
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "#000080" in (ROOT / "assets/logo.svg").read_text()


def test_the_registry_lists_every_page_script_once():
    """app/lessons.py is the one list of lessons: every script in lessons/ is in it once,
    with a title of its own, an icon and a line on what it teaches."""
    scripts = sorted(f"lessons/{p.name}" for p in (ROOT / "lessons").glob("*.py"))
    assert sorted(x.path for x in LESSONS) == scripts
    assert len({x.title for x in LESSONS}) == len(LESSONS)
    assert all(x.icon.startswith(":material/") and x.blurb.strip() for x in LESSONS)
    assert HOME.title == "Welcome" and HOME.narrow
    assert not by_title("Attention graph").narrow  # figures need the width


def test_welcome_opens_first_with_no_run_and_no_model():
    """The default page draws without a run or a model (a model that cannot load), and
    starts nothing: the links, titled by main.py, are the whole page."""
    at = AppTest.from_file("../main.py", default_timeout=60)
    at.session_state["model_spec"] = str(ROOT / "no-such-model-folder")
    at.run()
    assert_ok(at)
    assert at.title[0].value == "Token Attention Visualizer"
    assert any("No model is loaded" in x.value for x in at.sidebar.warning)
    assert at.session_state["run"] is None
    links = at.get("page_link")
    # every other page, in reading order, titled by main.py's navigation
    expected = [x.title for x in LESSONS if x is not HOME]
    assert [x.proto.label for x in links[1:]] == expected  # after "Start: write a prompt"
    assert all(x.proto.page_script_hash for x in links)  # each a registered page
    captions = [c.value for c in at.caption]
    assert all(x.blurb in captions for x in LESSONS if x is not HOME)
    assert links[0].proto.label == "Start: write a prompt"


# ---- every page ends with its own source ------------------------------------------------


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "lessons").glob("*.py")))
def test_every_page_script_ends_with_its_source(page):
    last = ast.parse((ROOT / "lessons" / page).read_text(encoding="utf-8")).body[-1]
    assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call), page
    func = last.value.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id
    assert name == "page_source", page
    assert isinstance(last.value.args[0], ast.Name) and last.value.args[0].id == "__file__"


def test_after_a_run_every_page_shows_its_own_source(app):
    app.slider(key="max_tokens__w").set_value(4)
    button(app, "Generate").click().run()
    assert_ok(app)
    n_tokens = len(app.session_state["run"].result.token_ids)
    for page in ALL_PAGES:
        app.switch_page(page).run()
        assert_ok(app)
        label = f"Source: this page ({page})"
        switch = next((t for t in app.toggle if t.label == label), None)
        assert switch is not None, page
        assert not switch.value  # off: no code sent with the page
        source = (ROOT / page).read_text(encoding="utf-8").rstrip()
        assert not [c for c in app.code if c.value.rstrip() == source], page
        switch.set_value(True).run()
        assert_ok(app)
        # st.code drops the file's final newline
        assert [c for c in app.code if c.value.rstrip() == source], page
        app.toggle(key=switch.key).set_value(False).run()
        if page == "lessons/predictions.py":  # the token chips, one per token
            chips = [h.proto.body for h in app.get("html") if "tav-chips" in h.proto.body]
            assert len(chips) == 1 and chips[0].count('class="tav-id"') == n_tokens


# ---- the token chips --------------------------------------------------------------------


class Chips(HTMLParser):
    """Every tag and attribute of the chips' HTML, and the text of each chip's parts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.kinds: list[str] = []
        self.texts: list[str] = []
        self.ids: list[str] = []
        self.gaps: list[str] = []
        self._into: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)
        cls = dict(attrs).get("class", "") or ""
        if cls.startswith("tav-chip "):
            self.kinds.append(cls.split()[1])
        into = {"tav-text": self.texts, "tav-id": self.ids, "tav-gap": self.gaps}.get(cls)
        if into is not None:
            into.append("")
            self._into = into

    def handle_endtag(self, tag):
        self._into = None

    def handle_data(self, data):
        if self._into is not None:
            self._into[-1] += data


def parse(html: str) -> Chips:
    p = Chips()
    p.feed(html)
    return p


def test_chips_escape_hostile_token_text():
    texts = ["<|im_start|>", "·Hi", HOSTILE, "**b**", '"q"&amp;', "$x$", ":red[x]"]
    ids = np.array([1, 22, 333, 4444, 5, 6, 7])
    special = np.array([True, False, False, False, False, False, False])
    view = token_chips(texts, ids, special, prompt_len=3)
    assert "<img" not in view.html and "onerror=alert(1)&gt;" in view.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in view.html
    chips = parse(view.html)
    assert chips.tags == {"style", "div", "span"}  # no token made a tag ...
    assert chips.attrs == {"class", "title"}  # ... or an attribute
    assert chips.texts == texts  # each token's text comes back exactly, as text
    assert chips.ids == ["1", "22", "333", "4444", "5", "6", "7"]
    assert chips.kinds == ["special", "prompt", "prompt"] + ["generated"] * 4
    assert (view.shown, view.total, view.n_prompt, view.n_generated) == (7, 7, 3, 4)
    assert "3 tokens" in chips_caption(view) and "(4)" in chips_caption(view)


def test_long_runs_draw_their_first_and_last_chips():
    n = 11
    texts = [f"t{i}" for i in range(n)]
    view = token_chips(texts, np.arange(n) * 10, np.zeros(n, dtype=bool), prompt_len=9, limit=4)
    chips = parse(view.html)
    assert chips.texts == ["t0", "t1", "t9", "t10"]
    assert chips.ids == ["0", "10", "90", "100"]
    assert chips.kinds == ["prompt", "prompt", "generated", "generated"]
    assert chips.gaps == ["… 7 tokens not shown …"]
    assert view.shown == 4 and "first and last 2 of the 11 tokens" in chips_caption(view)
    with pytest.raises(ValueError):
        token_chips(texts, np.arange(n - 1), np.zeros(n, dtype=bool), prompt_len=3)
