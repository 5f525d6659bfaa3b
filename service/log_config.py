"""The server's logging: uvicorn's configuration, with query strings kept out of the access log.

A query string can carry what does not belong in a log (a status key, a search term), so the access
log shows the path only. The service's own logger (``sundstat.*``) writes through uvicorn's default
handler, one line per event.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG

__all__ = ["StripQueryString", "server_log_config"]

_PATH_ARG = 2  # uvicorn's access record: (client, method, path with query string, http version, status)


class StripQueryString(logging.Filter):
    """Drop everything from ``?`` in the path of an access-log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG:
            path = args[_PATH_ARG]
            if isinstance(path, str):
                record.args = (*args[:_PATH_ARG], path.split("?", 1)[0], *args[_PATH_ARG + 1 :])
        return True


def server_log_config() -> dict[str, Any]:
    """uvicorn's ``LOGGING_CONFIG`` plus the query-string filter and the ``sundstat`` logger."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["strip_query"] = {"()": f"{__name__}.StripQueryString"}
    config["handlers"]["access"]["filters"] = ["strip_query"]
    config["loggers"]["sundstat"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
