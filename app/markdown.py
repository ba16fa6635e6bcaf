"""Text made literal for Streamlit's Markdown: the one escape for anything a user typed or
a token holds, wherever it lands in a caption, a message or a label."""

from __future__ import annotations

_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>$~:=&")


def md_escape(text: str) -> str:
    """Text made literal for st.markdown-style elements (captions, errors, labels).

    Every Markdown-active ASCII punctuation is backslash-escaped, so `**x**`, `[a](b)`,
    `$x$` and `:red[x]` show as typed; raw HTML is never enabled anywhere in the app. The
    text is isolated (U+2068 ... U+2069, first strong isolate), so right-to-left or
    direction-changing characters in it can never reorder the sentence around it.
    """
    escaped = "".join("\\" + c if c in _MD_SPECIAL else c for c in str(text))
    return "\u2068" + escaped + "\u2069"
