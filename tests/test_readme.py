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
    top = "\n".join(lines[:40])
    for command in (
        "uv run streamlit run main.py",
        'uv run pytest -m "not slow"',
        "uv run pytest ",
    ):
        assert command in top, command


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
