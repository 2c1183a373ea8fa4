"""Stage 3, analysis: per-channel statistics, channel selection, top examples that merge,
model comparison. numpy only."""
