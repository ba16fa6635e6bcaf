"""What the views compute from a run: pure numpy functions on the engine's arrays.

Where an analysis needs more than the run stored (hidden states, full patterns, the
unembedding), its module ends with one entry point that runs that forward pass through
lib.model and hands the arrays to the pure functions above it.

    attention     the graph's processing: aggregate, split, separate normalisation
    next_token    distributions, sampling filters, predictions at every position
    head_roles    previous-token, induction, duplicate-token and sink scores per head
    logit_lens    each layer's prediction through the final norm and unembedding
    fingerprint   the 20 numbers per token and its zone
    residual      the residual stream before/after each attention and MLP: sub-layer lens,
                  activation sizes
    weights       embedding PCA with clusters, OV-circuit spectra, copying scores (OV
                  eigenvalues)
    analogy       vector arithmetic on the input embeddings
    ablation      zero-ablating heads, for one step and for the induction probe
"""
