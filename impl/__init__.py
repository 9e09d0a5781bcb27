"""lmspec's PyTorch implementation of the tutorial: functional core, thin modules.

Imports torch, jaxtyping and beartype only, never sympy or spec/.
"""

from impl._registry import implementation as implementation
from impl._registry import implementations as implementations
from impl._registry import implements as implements
from impl._registry import runtime_checks as runtime_checks
from impl._registry import runtime_checks_enabled as runtime_checks_enabled
from impl._registry import set_runtime_checks as set_runtime_checks
from impl.attention import MultiHeadAttention as MultiHeadAttention
