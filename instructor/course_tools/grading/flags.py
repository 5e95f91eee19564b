"""Point the instructor at code that reaches for the grading machinery.

Autograding runs the student's code and the tests in one Python process, so a determined
student can make tests pass without solving them (patch torch, the checks, IPython's error
display). Nothing here changes a score: the gradebook's `flags` column lists what a static
reading of the student's own cells found, and which check cells came back restored, so that
an instructor knows which autograded notebooks to read in the formgrader.

It also lists the exercises whose code called what they forbid (`utils.checks.exercise(...,
forbid=...)`: the course's reference, or the PyTorch function that does the whole job), as
their check cells reported it while the notebook ran (`delegations`); whether that scores
zero is decided in the kernel (`COURSE_DELEGATION`), not here.
"""

from __future__ import annotations

import ast
import re

import nbformat

# names a student's code has no business reassigning attributes of
GUARDED_ROOTS = {"checks", "utils", "torch", "_torch", "np", "numpy", "builtins", "sys", "os",
                 "IPython", "F", "nn", "math", "pd", "pandas"}
SUSPICIOUS_CALLS = {"get_ipython", "setattr", "delattr", "__import__", "exec", "eval", "compile"}
SUSPICIOUS_IMPORTS = {"ctypes", "subprocess", "signal", "builtins", "gc", "IPython", "ipykernel",
                      "nbgrader", "importlib", "socket"}
SUSPICIOUS_ATTRIBUTES = {"os._exit", "os.kill", "os.system", "os.fork", "os.execv", "sys.modules",
                         "sys.settrace", "sys.setprofile", "sys.excepthook"}
# the start of utils.checks.delegation_message (tests/test_delegation.py keeps the two in step)
DELEGATED = re.compile(r"(?P<exercise>[A-Za-z_]\w*): delegated to (?P<names>`[^`\n]+`(?:, `[^`\n]+`)*)")
SHELL = re.compile(r"^\s*!|^%%(bash|sh|script|system)\b|^\s*%(system|sx)\b", re.M)


def _grader(cell: nbformat.NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _dotted(node: ast.AST) -> str:
    """`a.b.c` for an attribute chain (subscripts shown as []), "" when it is not one."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    if isinstance(node, ast.Subscript):
        base = _dotted(node.value)
        return f"{base}[]" if base else ""
    return ""


def _imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    if isinstance(node, ast.Delete):
        return list(node.targets)
    return []


def code_flags(source: str, modules: set[str]) -> set[str]:
    """What one cell of the student's own code does to the grading machinery."""
    try:
        tree = ast.parse("\n".join("pass" if line.lstrip().startswith(("%", "!")) else line
                                   for line in source.splitlines()))
    except SyntaxError:
        return set()
    guarded = GUARDED_ROOTS | modules | _imported(tree)
    found = {"runs shell commands"} if SHELL.search(source) else set()
    for node in ast.walk(tree):
        for target in _targets(node):
            name = _dotted(target)
            if "." in name and name.split(".")[0] in guarded:
                found.add(f"reassigns {name}")
        if isinstance(node, ast.Call) and _dotted(node.func) in SUSPICIOUS_CALLS:
            found.add(f"calls {_dotted(node.func)}")
        if isinstance(node, ast.Import):
            found |= {f"imports {a.name}" for a in node.names if a.name.split(".")[0] in SUSPICIOUS_IMPORTS}
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in SUSPICIOUS_IMPORTS:
            found.add(f"imports {node.module}")
        if isinstance(node, ast.Attribute) and _dotted(node) in SUSPICIOUS_ATTRIBUTES:
            found.add(f"uses {_dotted(node)}")
        if isinstance(node, ast.Name) and node.id == "__builtins__":
            found.add("uses __builtins__")
    return found


def restored_cell_flags(submitted: nbformat.NotebookNode, released: nbformat.NotebookNode,
                        solution: nbformat.NotebookNode) -> list[str]:
    """Exercise cells the student deleted, check cells deleted or edited: the grader restored them."""
    theirs = {_grader(c).get("grade_id"): c.source.strip() for c in submitted.cells if c.cell_type == "code"}
    versions: dict[str, set[str]] = {}  # grade_id -> the sources a check cell has in the course
    for cell in [*released.cells, *solution.cells]:
        if cell.cell_type == "code" and _grader(cell).get("grade"):
            versions.setdefault(_grader(cell)["grade_id"], set()).add(cell.source.strip())
    found = []
    for cell in released.cells:
        grade_id = _grader(cell).get("grade_id")
        if grade_id is None or cell.cell_type != "code":
            continue
        kind = "check" if grade_id in versions else "exercise"
        if grade_id not in theirs:
            found.append(f"deleted {kind} cell {grade_id} (restored)")
        elif kind == "check" and theirs[grade_id] not in versions[grade_id]:
            found.append(f"edited check cell {grade_id} (restored)")
    return found


def flags(submitted: nbformat.NotebookNode, released: nbformat.NotebookNode,
          solution: nbformat.NotebookNode) -> list[str]:
    """Everything worth a look in `submitted`: restored check cells, then suspicious code."""
    course = (released, solution)
    known = {c.source.strip() for nb in course for c in nb.cells}
    modules = set().union(*(_imported_safely(c.source) for nb in course for c in nb.cells
                            if c.cell_type == "code"))
    found: set[str] = set()
    for cell in submitted.cells:
        # every unknown code cell, whatever its metadata claims: students can edit metadata too
        if cell.cell_type == "code" and cell.source.strip() not in known:
            found |= code_flags(cell.source, modules)
    return restored_cell_flags(submitted, released, solution) + sorted(found)


def _imported_safely(source: str) -> set[str]:
    try:
        return _imported(ast.parse(source))
    except SyntaxError:
        return set()


def _output_text(output: nbformat.NotebookNode) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return output.get("evalue", "")
    return ""


def delegations(executed: nbformat.NotebookNode) -> list[str]:
    """`delegated: EXERCISE -> NAME, ...` for every check cell of the executed notebook that
    reported a forbidden call (utils.checks), in notebook order."""
    found: dict[str, None] = {}
    for cell in executed.cells:
        if cell.cell_type != "code" or not _grader(cell).get("grade"):
            continue
        for output in cell.get("outputs", []):
            for match in DELEGATED.finditer(_output_text(output)):
                names = re.findall(r"`([^`]+)`", match["names"])
                found.setdefault(f"delegated: {match['exercise']} -> {', '.join(names)}")
    return list(found)
