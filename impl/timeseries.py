"""The timeseries family (being written)."""
