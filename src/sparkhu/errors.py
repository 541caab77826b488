"""The one exception tree of sparkhu.

Every error the platform raises on purpose is a :class:`SparkhuError`. Each layer has its
own family so callers can catch what they can handle; third-party exceptions (SQLAlchemy,
DuckDB, pyarrow, Kafka, HTTP) are translated once, at the boundary, with ``raise ... from exc``.
Messages name the offending thing (file and line, key, series, URI) and how to fix it: the
CLI prints ``str(error)`` as one line, the gateway maps the class to a typed API error.

>>> err = InputError("bad number", source="meters.csv", line=12, field="WHE")
>>> str(err)
'meters.csv:12: WHE: bad number'
"""

from __future__ import annotations


class SparkhuError(Exception):
    """Root of every error sparkhu raises on purpose."""


class ConfigError(SparkhuError):
    """A setting is missing, malformed or names an unsupported backend."""


class InputError(SparkhuError):
    """Malformed input data: names the source, the line (1-based) and the field at fault."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.line = line
        self.field = field
        super().__init__(message)

    def __str__(self) -> str:
        where = ""
        if self.source is not None:
            where = self.source + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        if self.field is not None:
            where += f"{self.field}: "
        return where + self.reason


class NotFoundError(SparkhuError):
    """A named thing (series, dataset, model, run) does not exist."""


class BackendUnavailable(SparkhuError):
    """A backend named by URI cannot be reached; the message carries the URI."""

    def __init__(self, uri: str, detail: str) -> None:
        self.uri = uri
        super().__init__(f"cannot reach {uri}: {detail}")


class StorageError(SparkhuError):
    """Family of the storage layer (lake, catalog, prediction store)."""


class LakeError(StorageError):
    """A lake read or write failed."""


class CatalogError(StorageError):
    """A catalog operation failed or its schema is not at the expected migration."""


class BusError(SparkhuError):
    """Family of the stream layer: topics, producers, consumers, codecs."""


class CodecError(BusError):
    """A message could not be decoded or encoded."""


class ConnectorError(SparkhuError):
    """A source or sink failed for a reason other than bad records."""


class PipelineError(SparkhuError):
    """The task graph is invalid or a task failed."""


class ForecastError(SparkhuError):
    """A model cannot be fitted or cannot forecast."""


class GatewayError(SparkhuError):
    """An API request is invalid (bad arguments, bounds exceeded, missing token)."""


class AuthError(GatewayError):
    """A mutation came without a valid token."""
