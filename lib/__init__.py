"""Engine of the Token Attention Visualizer: plain Python, no Streamlit."""
