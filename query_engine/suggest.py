"""One did-you-mean for every error message that names an unknown word (register, column, key value)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]

# Above this many choices the case-insensitive second try is skipped: it would rebuild a large map for
# a suggestion that an exact-case near match already failed to find.
_CASE_FOLD_LIMIT = 5_000


def did_you_mean(word: object, choices: Iterable[object], *, limit: int = 3) -> str:
    """`` Did you mean 'a' or 'b'?`` for the choices close to ``word`` (case-insensitive if need be), else ``""``.

    >>> did_you_mean("regoin", ["region", "sex"])
    " Did you mean 'region'?"
    >>> did_you_mean("e11", ["E11", "E10"], limit=1)
    " Did you mean 'E11'?"
    >>> did_you_mean("xyz", ["region"])
    ''
    """
    texts = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), texts, n=limit, cutoff=0.6)
    if not close and len(texts) < _CASE_FOLD_LIMIT:
        lowered = {t.lower(): t for t in texts}
        folded = difflib.get_close_matches(str(word).lower(), list(lowered), n=limit, cutoff=0.6)
        close = [lowered[m] for m in folded]
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
