"""The edge side's one error class: everything it reports to a user as one line (or, over HTTP, as a 4xx)."""


class AppError(Exception):
    """A problem with the user's input, settings or bundle; the message says what, never a tweet's text."""


def os_error_line(exc: OSError) -> str:
    """An OSError in one line: its file and the system's reason, else the first line of its message."""
    if exc.strerror is None:
        return (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
