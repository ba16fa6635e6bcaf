"""The app layer: everything that knows Streamlit, between the library and the pages.

state     typed session state: every shared value, its type and default
runs      run requests, the current run, generation through the cache
caches    every st.cache_* of the app, under one stated rule
widgets   controls more than one page draws, each written once
"""
