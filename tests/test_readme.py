"""The README a newcomer reads: short, the two commands at the top, the lessons as the
registry lists them, and links that lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from app.lessons import markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_short_with_both_commands_near_the_top():
    lines = README.splitlines()
    assert len(lines) <= 150
    top = lines[:40]
    assert any(line.startswith("uv run streamlit run main.py") for line in top)
    assert any(line.startswith('uv run pytest -m "not slow"') for line in top)  # fast tier
    assert any(re.match(r"uv run pytest\s*(#|$)", line) for line in top)  # the whole suite


def test_the_lessons_table_is_the_registry():
    """Regenerate it with `uv run python -c "from app.lessons import markdown_table as t;
    print(t())"` after changing app/lessons.py."""
    assert markdown_table() in README


def test_every_link_and_picture_exists():
    targets = re.findall(r"\]\(([^)#]+)\)", README)
    local = [t for t in targets if not t.startswith("http")]
    assert len(local) >= 5, local
    assert [t for t in local if not (ROOT / t).exists()] == []
    for doc in (ROOT / "docs").glob("*.md"):  # links to documents and pictures
        for t in re.findall(r"\]\(([^)#:]+\.(?:md|png|svg|py))\)", doc.read_text("utf-8")):
            assert (doc.parent / t).exists(), (doc.name, t)
