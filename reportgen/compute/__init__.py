"""Stage 6, compute: batches of inputs through one model into per-input results, the one
cache branch, and the work after all inputs (examples, feature visualisation,
comparisons). Never imports the report stage."""
