"""The root of every exception bargein raises, so a program can catch them all at once."""


class BargeinError(Exception):
    """Base class of bargein's typed errors; its message is one line fit for a person."""
