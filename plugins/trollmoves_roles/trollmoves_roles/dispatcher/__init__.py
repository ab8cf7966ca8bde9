"""The dispatcher role: push announced files to destinations chosen by a YAML config."""
