"""Download buttons that keep working while other sessions rerun."""

from __future__ import annotations

from collections.abc import Callable

from app import caches
from app.state import state
from lib.config import LINES_TOP_K
from lib.model.request import Run

# Up to this many bytes a download is built with the page, so one click downloads it;
# a larger one (a long prompt's run) waits for a "Prepare" click.
EAGER_DOWNLOAD_BYTES = 8_000_000


def download(
    where,
    label: str,
    build: Callable[[], bytes | str],
    *,
    file_name: str,
    mime: str,
    size_hint: int = 0,
    help: str | None = None,
    prepare: bool = False,
) -> None:
    """A download button that keeps working while other sessions rerun.

    Streamlit's lazy download (`data=` a callable) stores the built file with no session
    referring to it, and the end of any two reruns, of any session, deletes such a file: in
    a busy class the browser's fetch then gets a 404, or no download starts at all. Here
    the bytes are given to `st.download_button`, so the file belongs to this session's page
    while it shows, and `on_click="ignore"` keeps the click from rerunning the page (a
    rerun would let go of the file for a moment). Files over EAGER_DOWNLOAD_BYTES, or slow
    to build (`prepare`), are built only after a "Prepare" click, then kept for the session.
    """
    prepared = state.prepared_downloads
    slot = where.empty()
    if (prepare or size_hint > EAGER_DOWNLOAD_BYTES) and file_name not in prepared:
        if not slot.button(
            f"Prepare: {label}",
            key=f"prepare:{file_name}",
            icon=":material/package_2:",
            help=f"About {size_hint / 1e6:,.0f} MB: built when you ask."
            if size_hint
            else "Built when you ask (it takes a moment).",
        ):
            return
        prepared.add(file_name)
    slot.download_button(
        label,
        build(),
        file_name=file_name,
        mime=mime,
        on_click="ignore",
        icon=":material/download:",
        help=help,
        key=f"download:{file_name}",
    )


def download_run(where, run: Run) -> None:
    """The whole run as a NumPy archive (the same button on every page that offers it)."""
    download(
        where,
        "Download the whole run (NPZ)",
        lambda: caches.npz(run.key, run.result),
        file_name=f"run-{run.key}.npz",
        mime="application/octet-stream",
        size_hint=run.result.nbytes(),
        help="Token ids, labels, every captured attention row (step x layer x head x key), "
        "and the next-token probabilities, as a NumPy archive.",
    )


def download_lesson(where, run: Run, layer: int | None, head: int | None, hide: bool) -> None:
    """The run as one offline HTML page, drawn with the graph's current settings."""
    view = state.view
    top_k = int(view.graph_top_k) if view.graph_lines == LINES_TOP_K else None
    threshold = float(view.threshold)
    download(
        where,
        "Download this run as an offline page (HTML)",
        lambda: caches.lesson_html(run.key, layer, head, hide, threshold, top_k, run.result),
        file_name=f"lesson-{run.key}-{layer}-{head}-{int(hide)}-{threshold:g}-{top_k}.html",
        mime="text/html",
        prepare=True,
        help="One file: the text, this graph with a slider over every step (this layer, head, "
        "sink and lines setting), and the attention matrix. It opens in any browser with no "
        "network: the plotting library is inside it.",
    )
