"""Input, staging, output and the commit protocol: the only code that knows paths and filesystems."""
