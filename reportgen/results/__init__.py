"""Stage 4, results: the typed records that cross stage boundaries (one input's result,
a run's merged results) and the store that caches them. No torch."""
