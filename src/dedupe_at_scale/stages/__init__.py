"""Per-document stages: each takes an Arrow batch and its config section and returns new columns and rejections."""
