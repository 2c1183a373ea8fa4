"""Stage 2, the network: models, weights, layers, the one owner of forward hooks, and the
reduction of a layer's tensor to per-channel statistics (the last torch type on the data path)."""
