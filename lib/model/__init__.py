"""The engine: load a causal LM, generate with exact attention capture, hold the result.

loading          the bundled SmolLM2, a hub id or a local folder -> LoadedModel
capture          the attention function that records softmax rows beside SDPA
generation       token-by-token generation (greedy or seeded sampling) -> result
result           GenerationResult and its settings: immutable, shared by every view
full_attention   whole-sequence matrices on demand, one extra forward pass
"""
