"""Disagreements of an implementation with the spec (the malformed-spec family is spec.SpecError)."""

from ..spec._errors import SpecError


class BindingError(SpecError):
    """An implementation's signature or annotations cannot be bound to its equation."""


class Mismatch(AssertionError):
    """An implementation disagrees with the spec. ``check`` names the check that caught it."""

    check: str = ""

    def __init__(self, message: str, *, check: str = "", details: dict | None = None) -> None:
        super().__init__(message)
        self.check = check
        self.details = details or {}


class ShapeMismatch(Mismatch):
    """An output has the wrong shape (or the implementation rejected a shape the spec accepts)."""


class ValueMismatch(Mismatch):
    """Values differ from the reference beyond the tolerance policy."""


class PropertyViolation(Mismatch):
    """An invariant of the equation does not hold for the implementation."""


class AuditError(SpecError):
    """The audit cannot start: the target does not import, is not callable, the equation is unknown …"""
