"""The edge side's one error class: everything it reports to a user as one line (or, over HTTP, as a 4xx)."""


class AppError(Exception):
    """A problem with the user's input, settings or bundle; the message says what, never a tweet's text."""
