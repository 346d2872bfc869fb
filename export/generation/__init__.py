"""Exporting a causal LM (task ``text_generation``): no trace, the model's own folder packaged
with the placement each format asks for, verified by greedy generation token for token."""
