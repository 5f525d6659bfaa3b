"""The parts of the synthetic register generator; ``datasets.generate`` is the entry that runs them.

``model`` (the population's parameters), ``world`` (everything sampled from, resolved once),
``dates`` (calendar arithmetic on day numbers), ``people`` (cpr, udda, ind), ``health`` (lpr, lmdb,
dar) and ``output`` (column containers, random keys, the deterministic Parquet writer).
"""

__all__: list[str] = []
