"""Authoring and instructor tools: release, conformance, grading.

Notebooks never import from here; maintainers and instructors run it with
`python -m course_tools COMMAND` (see `python -m course_tools --help`).
"""
