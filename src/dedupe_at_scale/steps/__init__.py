"""Global steps: each reads the staged columns it needs, decides over all documents with Ray tasks and returns a decision applier."""
