"""Imported once by the forkserver of ``lmspec verify --jobs N`` (verify.parallel): builds the catalogue and
imports impl/, so that every worker forks with them loaded instead of paying seconds of start-up each."""

from .. import impl, spec

spec.all()
impl.implementations()
