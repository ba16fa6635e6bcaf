"""Token Attention Visualizer: `uv run streamlit run main.py`."""

import streamlit as st

st.set_page_config(page_title="Token Attention Visualizer", layout="wide")
st.title("Token Attention Visualizer")
st.write("The pages arrive with the next issue.")
