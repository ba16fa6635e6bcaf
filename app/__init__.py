"""The app layer: everything besides the pages that knows Streamlit, between the library and
the pages (docs/architecture.md has the whole table).

lessons     the one list of lessons: navigation, Welcome page, tests
state       typed session state, grouped per lesson: every value, its type and default
caches      every st.cache_* of the app, under one stated rule, and the server's limits
runs        the run a page asks for, written by the scheduler; the current run
stepping    one token at a time (Step by step, autoplay)
link_query  what a shared link holds, read and written (no Streamlit)
links       the link applied on a session's first run and written back after each
quiz        quiz mode's question before a view
markdown    the one escape for user and token text in Markdown
token_view  the token chips
widgets/    controls more than one page draws, one job a module
"""
