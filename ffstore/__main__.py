"""`python -m ffstore` runs the CLI (used by tests that need a real process)."""

from ffstore.cli import entry

entry()
