"""Built-in audit targets of what users call on a transformers language model: the losses
(``GPT2LMHeadModel(..., labels=ids)``, ``BertForMaskedLM(..., labels=...)``) and generation
(``TemperatureLogitsWarper``, ``TopKLogitsWarper``, greedy ``generate()``), transformers 5.23.

(Being written: registers nothing yet.)
"""
