"""`adain bench`: frames per second per model, frame size, precision and device, measured against the
machine's own matmul roofline and against the naive loop that peer projects use, in the same run."""
