"""lmspec's specification: the tutorial's equations as SymPy objects with typed symbolic shapes.

Imports SymPy only: the math can be read and rendered without torch.
"""

from spec._errors import SpecError as SpecError
from spec._errors import SpecShapeError as SpecShapeError
from spec._errors import UnknownEquation as UnknownEquation
from spec.axes import GLOSSARY as GLOSSARY
from spec.equation import FAMILIES as FAMILIES
from spec.equation import Equation as Equation
from spec.equation import Invariant as Invariant
from spec.equation import Reference as Reference
from spec.equation import all as all  # noqa: A004
from spec.equation import families as families
from spec.equation import get as get
from spec.equation import select as select
from spec.tensors import Family as Family
from spec.tensors import Kind as Kind
from spec.tensors import TensorSymbol as TensorSymbol
from spec.tensors import tensor as tensor
