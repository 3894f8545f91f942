"""The build side's one error class: its message is the one line a command prints before exiting with 2."""


class BuildError(Exception):
    """A build-side failure the user can act on (bad input, missing file, unusable checkpoint)."""

