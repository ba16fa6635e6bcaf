"""The run's tokens as chips, each with its id beneath: the annotated-text view.

The usual way draws this with `st-annotated-text`. That package html-escapes the text but hands
the result to `st.markdown(unsafe_allow_html=True)`, so Markdown inside a token still
renders (`**b**` turns bold, `$x$` into maths), and it would be the one place in the app
with raw HTML switched on. This builder writes the same chips as plain HTML for
`st.html` (no Markdown pass; Streamlit sanitises it with DOMPurify and runs no scripts),
and every piece of token text goes through `html.escape` first: no token text can ever
become markup. Ids and positions are integers, classes and colours constants.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_CHIPS = 400  # drawn at once; longer runs show their first and last MAX_CHIPS // 2

PROMPT_COLOUR = "#dbe7f7"  # light blue: the graph draws prompt tokens blue
GENERATED_COLOUR = "#fde2cc"  # light orange: the graph's generated side
SPECIAL_COLOUR = "#ececec"

_STYLE = f"""<style>
.tav-chips {{ display: flex; flex-wrap: wrap; gap: 4px 3px; line-height: 1.15; }}
.tav-chip {{ display: inline-flex; flex-direction: column; align-items: center;
  padding: 2px 5px 1px; border-radius: 4px; border: 1px solid transparent; }}
.tav-chip.prompt {{ background: {PROMPT_COLOUR}; }}
.tav-chip.generated {{ background: {GENERATED_COLOUR}; }}
.tav-chip.special {{ background: {SPECIAL_COLOUR}; border: 1px dashed #8a8a8a; }}
.tav-text {{ font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.9rem;
  white-space: pre; unicode-bidi: isolate; color: #1b1f24; }}
.tav-id {{ font-size: 0.65rem; color: #555c66; font-variant-numeric: tabular-nums; }}
.tav-gap {{ align-self: center; padding: 0 6px; color: #555c66; font-size: 0.8rem; }}
</style>"""


@dataclass(frozen=True, eq=False)
class ChipView:
    """What the chips show, with the counts its caption states.

    html       the <style> and the chips, every token text escaped
    shown      how many tokens are drawn (all of them up to MAX_CHIPS)
    total      tokens in the run
    n_prompt   prompt tokens (special ones included), n_generated the rest
    """

    html: str
    shown: int
    total: int
    n_prompt: int
    n_generated: int

    def __post_init__(self) -> None:
        if not 0 <= self.shown <= self.total or self.n_prompt + self.n_generated != self.total:
            raise ValueError("shown must be within total, and prompt + generated equal total")


def _chip(i: int, text: str, token_id: int, kind: str) -> str:
    return (
        f'<span class="tav-chip {kind}" title="position {i} · {kind}">'
        f'<span class="tav-text">{html.escape(text, quote=True)}</span>'
        f'<span class="tav-id">{int(token_id)}</span></span>'
    )


def shown_positions(total: int, limit: int = MAX_CHIPS) -> tuple[range, range]:
    """The positions drawn: all of them, or the first and last `limit // 2` (the generated
    tokens are at the end, so they are always drawn)."""
    if total <= limit:
        return range(total), range(0)
    half = limit // 2
    return range(half), range(total - half, total)


def token_chips(
    texts: Sequence[str],
    ids: np.ndarray,
    special: np.ndarray,
    prompt_len: int,
    limit: int = MAX_CHIPS,
) -> ChipView:
    """Chips for N tokens: display-mode `texts` (· ↵ →, lib.labels), `ids` (N,) and
    `special` (N,) bool; positions below `prompt_len` are the prompt."""
    total = len(texts)
    if ids.shape != (total,) or special.shape != (total,) or not 0 <= prompt_len <= total:
        raise ValueError(f"ids and special must be ({total},), prompt_len within 0..{total}")

    def chip(i: int) -> str:
        kind = "special" if special[i] else ("prompt" if i < prompt_len else "generated")
        return _chip(i, texts[i], int(ids[i]), kind)

    head, tail = shown_positions(total, limit)
    parts = [chip(i) for i in head]
    if len(tail):
        hidden = total - len(head) - len(tail)
        parts.append(f'<span class="tav-gap">… {hidden:,} tokens not shown …</span>')
        parts.extend(chip(i) for i in tail)
    body = '<div class="tav-chips">' + "".join(parts) + "</div>"
    return ChipView(
        html=_STYLE + body,
        shown=len(head) + len(tail),
        total=total,
        n_prompt=prompt_len,
        n_generated=total - prompt_len,
    )


def chips_caption(view: ChipView) -> str:
    """What the colours mean, and how many tokens are drawn (numbers only: safe Markdown)."""
    hidden = (
        ""
        if view.shown == view.total
        else f" Only the first and last {view.shown // 2:,} of the {view.total:,} tokens are "
        "drawn; the table below has them all."
    )
    return (
        f"Each chip is one token: what it writes (· a space, ↵ a newline, → a tab) and its id "
        f"in the vocabulary beneath. Blue: the prompt ({view.n_prompt:,} tokens); orange: "
        f"generated ({view.n_generated:,}); grey, dashed: special tokens." + hidden
    )
