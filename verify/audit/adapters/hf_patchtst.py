"""Built-in audit targets of transformers' PatchTST (5.23): its patching and input embedding against
``timeseries.patching`` and ``timeseries.input`` where the tutorial's forms apply.

(Being written: registers nothing yet.)
"""
