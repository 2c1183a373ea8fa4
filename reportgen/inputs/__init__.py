"""Stage 1, inputs: finding input files, fetching URLs, decoding images. No torch."""
