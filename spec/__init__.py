"""lmspec's specification: the tutorial's equations as SymPy objects with typed symbolic shapes.

Imports SymPy only: the math can be read and rendered without torch.
"""

from ._errors import SpecError as SpecError
from ._errors import SpecShapeError as SpecShapeError
from ._errors import UnknownEquation as UnknownEquation
from .axes import GLOSSARY as GLOSSARY
from .equation import FAMILIES as FAMILIES
from .equation import Equation as Equation
from .equation import Invariant as Invariant
from .equation import Reference as Reference
from .equation import all as all  # noqa: A004
from .equation import families as families
from .equation import get as get
from .equation import select as select
from .tensors import Family as Family
from .tensors import Kind as Kind
from .tensors import TensorSymbol as TensorSymbol
from .tensors import tensor as tensor
