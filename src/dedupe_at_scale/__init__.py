"""dedupe-at-scale: curate LLM training data at scale on Ray Data."""

__version__ = "0.1.0"
