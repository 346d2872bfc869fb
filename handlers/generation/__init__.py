"""Text generation: causal LMs served one prompt at a time, streamed or whole."""
