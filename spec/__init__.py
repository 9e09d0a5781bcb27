"""lmspec's specification: the tutorial's equations as SymPy objects with typed symbolic shapes.

Imports SymPy only: the math can be read and rendered without torch.
"""

from ._errors import SpecError as SpecError
from ._errors import SpecShapeError as SpecShapeError
from ._errors import UnknownEquation as UnknownEquation
from .axes import GLOSSARY as GLOSSARY
from .catalogue import FAMILIES as FAMILIES
from .catalogue import all as all  # noqa: A004
from .catalogue import families as families
from .catalogue import get as get
from .catalogue import select as select
from .equation import Equation as Equation
from .equation import Invariant as Invariant
from .equation import Reference as Reference
from .tensors import Family as Family
from .tensors import Kind as Kind
from .tensors import TensorSymbol as TensorSymbol
from .tensors import tensor as tensor
