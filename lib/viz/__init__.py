"""Figure and table builders: Plotly, Altair and pandas, never Streamlit.

Token text is always data (labels, tooltips, cells), never markup. Each builder takes the
library's dataclasses and returns a figure, chart or DataFrame a page renders as it is.
"""
