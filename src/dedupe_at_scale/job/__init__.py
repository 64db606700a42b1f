"""The job: the list of phases on Ray Data, accounting, the manifest and the summary."""
