"""Authoring and instructor tools: release, conformance, grading.

Notebooks never import from here; maintainers and instructors run it with
`python -m utils.course COMMAND` (see `python -m utils.course --help`).
"""
