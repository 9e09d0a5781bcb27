"""lmspec's verifier: holds implementations to the spec.

Two error families: ``SpecError`` (a malformed spec, annotation or request; ``BindingError`` is one) and
``Mismatch`` (an implementation disagrees with the spec: ``ShapeMismatch``, ``ValueMismatch``,
``PropertyViolation``).
"""

from spec._errors import SpecError as SpecError
from verify._errors import BindingError as BindingError
from verify._errors import Mismatch as Mismatch
from verify._errors import PropertyViolation as PropertyViolation
from verify._errors import ShapeMismatch as ShapeMismatch
from verify._errors import ValueMismatch as ValueMismatch
from verify.runner import PROFILES as PROFILES
from verify.runner import CheckResult as CheckResult
from verify.runner import verify as verify
