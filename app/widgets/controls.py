"""The controls the views share, each tied to one session value: the same control, with
the same range and help, on every page that draws it."""

from __future__ import annotations

import streamlit as st

from app.state import bound, clamp_step, get, put, widget_key

SINK_HELP = (
    "Most models park a large share of their attention on the first token. Hiding it and "
    "renormalising each row over the other tokens makes the rest visible."
)
_ALL = -1  # the pickers' "all of them (mean)" option: a selectbox shows None as unset


def step_slider(
    key: str, n: int, help: str, default: int = 1, label: str = "Generation step"
) -> int:
    """The generation-step slider over the value `key` (1-based on screen, `default` when
    unset or out of range); returns the 0-based step."""
    clamp_step(key, n, default=default)
    if n > 1:
        st.slider(label, 1, n, **bound(key), help=help)
    else:
        st.caption("One token was generated: step 1 of 1.")
    return int(get(key)) - 1


def _index_picker(where, key: str, label: str, n: int) -> None:
    """A selectbox over "all" and 0..n-1, tied to the shared value `key` (None = all)."""
    wkey = widget_key(key)
    value = get(key)
    if value not in range(n):
        value = None
        put(key, None)
    st.session_state[wkey] = _ALL if value is None else value

    def store() -> None:
        picked = st.session_state[wkey]
        put(key, None if picked == _ALL else int(picked))

    where.selectbox(
        label,
        [_ALL, *range(n)],
        format_func=lambda i: f"All {label.lower()}s (mean)" if i == _ALL else f"{label} {i}",
        key=wkey,
        on_change=store,
    )


def layer_head_picker(n_layers: int, n_heads: int) -> tuple[int | None, int | None]:
    """Layer and head pickers (None = the mean over all of them), side by side."""
    c1, c2 = st.columns(2)
    _index_picker(c1, "layer", "Layer", n_layers)
    _index_picker(c2, "head", "Head", n_heads)
    return get("layer"), get("head")


def threshold_slider(where=st) -> float:
    """The graph's attention threshold (also set on Generate, next to the token count)."""
    where.slider(
        "Attention threshold",
        0.0,
        0.2,
        step=0.001,
        format="%.3f",
        **bound("threshold"),
        help="The graph hides connections whose normalised weight is below this.",
    )
    return float(get("threshold"))


def sink_toggle(where=st, help: str = SINK_HELP) -> bool:
    """The one "hide the first-token sink" switch; every attention view follows it."""
    return bool(
        where.toggle("Hide the first-token sink and renormalise", **bound("hide_sink"), help=help)
    )


def window_slider(label: str, n: int, size: int, key: str) -> tuple[int, int]:
    """A range of at most `size` of n positions (the last ones at first); (0, n) if n fits."""
    if n <= size:
        return 0, n
    held = st.session_state.get(key)
    if not (isinstance(held, tuple | list) and len(held) == 2 and 0 <= held[0] < held[1] <= n):
        st.session_state[key] = (n - size, n)  # a new run may be shorter than the last
    lo, hi = st.slider(label, 0, n, key=key, help=f"At most {size} are drawn at once.")
    lo = min(lo, n - 1)
    return lo, min(max(hi, lo + 1), lo + size)
