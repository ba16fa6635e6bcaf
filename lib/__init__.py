"""The library: plain Python, no Streamlit. Layers, each importing only those above it:

config, labels, measures   defaults and limits; how a token is shown; shared measures
model/                     the engine: loading, exact attention capture, generation
analysis/                  what the views compute from a run (pure numpy, plus one entry
                           point per module that runs the forward pass it needs)
viz/                       figure and table builders (Plotly, Altair, pandas)
"""
