"""Errors the runtime raises for misuse. Messages always name the fix."""


class MisconfigurationException(Exception):
    """A setting, hook or argument that cannot work as given; the message says what to change."""
