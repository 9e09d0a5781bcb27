"""The audit: holds anyone's implementation (a function or module, torch.nn, Hugging Face) to an equation."""

from .auditor import audit as audit
from .report import AuditReport as AuditReport
