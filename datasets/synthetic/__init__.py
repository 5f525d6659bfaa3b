"""The parts of the synthetic register generator; ``datasets.generate`` is the entry that runs them.

``model`` (the population's parameters), ``truths`` (the effects built in by construction, stated
once), ``world`` (everything sampled from, resolved once), ``dates`` (calendar arithmetic on day
numbers), ``people`` (cpr, udda, ind), ``health`` (lpr, lmdb, dar), ``infarction`` (survival after a
first I21 and metformin before it) and ``output`` (column containers, random keys, the deterministic
Parquet writer).
"""

__all__: list[str] = []
