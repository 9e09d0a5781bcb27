"""lmspec's PyTorch implementation of the tutorial: functional core, thin modules.

Imports torch, jaxtyping and beartype only, never sympy or spec/.
"""

from ._registry import implementation as implementation
from ._registry import implementations as implementations
from ._registry import implementations_of as implementations_of
from ._registry import implements as implements
from ._registry import runtime_checks as runtime_checks
from ._registry import runtime_checks_enabled as runtime_checks_enabled
from ._registry import set_runtime_checks as set_runtime_checks
from .attention import MultiHeadAttention as MultiHeadAttention
