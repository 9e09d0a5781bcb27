"""Rendering the catalogue as a document: LaTeX (and PDF), Markdown, HTML."""
