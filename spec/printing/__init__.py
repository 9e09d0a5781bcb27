"""The spec's printers, one module per output language: LaTeX (the notation's reference form), MathML and
Unicode (the terminal).

Each printer dispatches on the class of what it prints, SymPy's way: a ``_print_<Class>`` method of the
printer, or the operator's own ``_latex`` hook, whose notation the MathML and Unicode printers read as a
template. A new operator adds a method; it imports no printer, and the printers import the operators.

As in SymPy, the functions ``latex``, ``mathml`` and ``unicode`` stand here in place of their modules'
names: reach a module's other names with ``from lmspec.spec.printing.latex import notation``.
"""

from .latex import SpecLatexPrinter as SpecLatexPrinter
from .latex import TexSyntaxError as TexSyntaxError
from .latex import latex as latex
from .latex import parse_tex as parse_tex
from .mathml import MATHML_NS as MATHML_NS
from .mathml import SpecMathMLPrinter as SpecMathMLPrinter
from .mathml import mathml as mathml
from .mathml import tex_to_mathml as tex_to_mathml
from .unicode import SpecUnicodePrinter as SpecUnicodePrinter
from .unicode import relation_unicode as relation_unicode
from .unicode import size_unicode as size_unicode
from .unicode import tex_to_unicode as tex_to_unicode
from .unicode import unicode as unicode
