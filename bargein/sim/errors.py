"""The simulator's typed error, so callers can tell a bad simulator setup from other failures."""

from bargein.errors import BargeinError


class SimError(BargeinError):
    """A simulator option, fault specification or server start failed; the message says which."""
