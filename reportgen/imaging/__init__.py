"""Stage 5, imaging: arrays to PNG/JPEG bytes (maps, sheets, overlays, filters,
crops). No torch."""
