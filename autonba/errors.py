"""User-facing errors: the CLI prints them as one line and exits with code 2."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable


class AutonbaError(Exception):
    """A problem with the user's input (config, files, names, constraints)."""


class Intractable(AutonbaError):
    """An exact engine refuses a space too large to enumerate (the caller may fall back to a heuristic)."""


# every character str.splitlines() breaks at, escaped (a name in a user's file may hold them)
_ONE_LINE = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(e: BaseException) -> str:
    """What the CLI prints for an error it expects (a user's input, the file system), without the prefix."""
    if isinstance(e, OSError) and not isinstance(e, AutonbaError):
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror or e}".translate(_ONE_LINE)
    return str(e).translate(_ONE_LINE)


def exit_code(command: Callable[[], object]) -> int:
    """Run a command as the CLI does: a user's error is one line ``autonba: error: ...`` and exit 2."""
    try:
        command()
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AutonbaError, OSError) as e:  # one line, whatever a file's names hold
        print(f"autonba: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autonba: interrupted", file=sys.stderr)
        return 130
    return 0
