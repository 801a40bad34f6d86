"""The closest valid name for a mistyped one, for error messages ("did you mean num_leaves?")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the choice closest to ``name``, or ``""`` when none is close.

    Parameters
    ----------
    name : object
        What the user wrote (its ``str`` is compared).
    choices : iterable of str
        The valid names.

    Returns
    -------
    str
        A suffix for an error message.
    """
    close = difflib.get_close_matches(str(name), sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
