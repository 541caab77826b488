"""sparkhu: many time series on autopilot.

Layers (imports only go downward):
cli/gateway → control/online/pipeline/forecast/retention → engine/stream/storage/connectors → series/config.
"""

__version__ = "0.1.0"
