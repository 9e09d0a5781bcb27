"""Inference of a function's binding: ``lmspec audit FILE.py:f --as ID`` with no ``--layout``.

lmspec works out the layout string a user would write, from what the code says and what its shapes show,
and then audits with it exactly as if the user had written it (the report and ``--explain`` print it).

**What decides.**

1. *Names* map arguments to the equation's symbols: the symbol's own name in any case (``q`` is Q), then
   the names real code uses (``query``, ``hidden_states``, ``x``, ``logits``, ``labels``, ``attention_mask``
   …, :data:`SYNONYMS`), and integer arguments to the sizes they carry (``seq_len`` is n, ``d_model`` is
   d_e). An ``is_causal`` flag is passed ``True`` and the mask pinned causal.
2. *A mask's convention* comes from its name, never from values (:data:`MASK_NAMES`): ``key_padding_mask``
   is torch's per-key ``True`` = padding, ``attention_mask`` Hugging Face's per-key 1 = attend (or its
   extended additive form), ``attn_mask`` torch's additive float mask, any other ``mask`` a keep mask
   (``masked_fill(mask == 0, -inf)``, the Annotated Transformer's and most tutorials').
3. *Shapes* decide the axis orders, probed at distinct sizes (every axis of the equation, the batch and head
   axes each a different number): tokens as rows or as columns, one or two leading batch axes, where a mask
   sits. A candidate binding must run and return the equation's output shape.

**The rule that keeps a bug visible: values never choose a binding.** Among bindings that fit the shapes
lmspec takes the first in a fixed order of preference (the most batch axes, tokens as rows), and among
conventions a name does not fix it takes the documented default; it never tries bindings until one passes.
A target whose mask polarity, scale or orientation differs from the chosen binding therefore fails or is
named as a variant ("mask polarity inverted") — the verdict a written layout would give — instead of
passing under a binding chosen to hide it. Bindings that fit equally but would mean different things are
named in the notes, with the command for each.

The package: _names (the tables of names), _code (what a target's source says), _function (a function's
layout and mask), _module (a module class: constructor, configuration, parameter maps, its forward).
"""

from ._function import InferenceError as InferenceError
from ._function import Inferred as Inferred
from ._function import infer_function as infer_function
from ._function import probe_sizes as probe_sizes
from ._module import InferredModule as InferredModule
from ._module import infer_forward as infer_forward
from ._module import infer_module as infer_module
from ._module import init_args as init_args

__all__ = [
    "InferenceError",
    "Inferred",
    "InferredModule",
    "infer_forward",
    "infer_function",
    "infer_module",
    "init_args",
    "probe_sizes",
]
