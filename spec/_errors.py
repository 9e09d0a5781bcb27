"""The errors of spec/: a malformed specification is not a wrong value."""


class SpecError(Exception):
    """A specification, an annotation or a request is malformed (not a disagreement of values)."""


class SpecShapeError(SpecError):
    """Building an equation combined tensors whose symbolic shapes disagree."""

    def __init__(self, equation: str, operation: str, axis: str, left: str, right: str) -> None:
        self.equation = equation
        self.operation = operation
        self.axis = axis
        self.left = left
        self.right = right
        super().__init__(f"{equation}: {operation}: {axis} disagrees: left side {left}, right side {right}")


class UnknownEquation(SpecError, KeyError):
    """An equation id or family is not in the catalogue."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
