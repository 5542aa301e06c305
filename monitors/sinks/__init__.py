"""Metric sinks: where samples go (InfluxDB v1/v2, the embedded SQLite store) and how they get
there (batching, an on-disk spool replayed in order after an outage).

``base`` holds the contract (``Sample``, ``MetricSink``, ``LineProtocolSink``, ``MetricQuery``);
the other modules implement it. A typical chain, built by the composition root::

    BatchingSink(SpoolingSink(InfluxV1Sink(InfluxV1Config(...)), Spool(spool_dir)))
    BatchingSink(EmbeddedStore(path))                      # no InfluxDB configured

The measurement schema is documented in ``docs/metrics.md``.
"""

import logging

from monitors.sinks.base import (
    Aggregation,
    FieldValue,
    LineProtocolSink,
    MetricQuery,
    MetricSink,
    QueryLimits,
    Sample,
    SeriesPoint,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Aggregation",
    "FieldValue",
    "LineProtocolSink",
    "MetricQuery",
    "MetricSink",
    "QueryLimits",
    "Sample",
    "SeriesPoint",
]
