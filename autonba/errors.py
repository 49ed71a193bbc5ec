"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class AutonbaError(Exception):
    """A problem with the user's input (config, files, names, constraints)."""


class Intractable(AutonbaError):
    """An exact engine refuses a space too large to enumerate (the caller may fall back to a heuristic)."""
