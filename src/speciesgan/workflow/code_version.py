"""The code a stage runs, as a digest: how an edit of the code reaches the results.

Snakemake reruns a job when its rule's ``params`` change (the default rerun
triggers include ``params``), so each rule that runs a ``speciesgan`` subcommand
puts ``stage_digest(subcommand)`` among its params: a SHA-256 of the source files
of every ``speciesgan`` module that subcommand imports, directly or through
others.  Editing ``gan/loss.py`` changes train-gan's digest (and so reruns it and
what follows from its outputs); editing ``report/page.py`` leaves it alone.  The
DVC export lists the same files as each stage's deps (``stage_files``).

The modules are found without importing anything: the subcommand's branch of
``speciesgan.cli.run`` names the modules it imports, and an ``ast`` walk of each
module's imports (at any depth, lazy ones too) gives the rest.  ``cli.py`` itself
and the package's ``__init__`` are left out: they parse arguments and would make
every stage rerun for a new subcommand's help text.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
SRC = PACKAGE.parent
LEFT_OUT = frozenset({"speciesgan", "speciesgan.cli", "speciesgan.__main__"})
CODE_FREE = frozenset({"download"})
"""Subcommands whose output the code does not decide: a download's bytes are the
URL's, pinned by their SHA-256 (re-downloading for an edit of the retry loop would
only cost time)."""
DATA_FILES = {"speciesgan.config": ("config.schema.yaml",)}
"""Files beside a package's modules that its code reads (the schema's defaults)."""


@functools.cache
def module_files() -> dict[str, Path]:
    """Dotted name -> file, for every module and package of speciesgan."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def module_of(name: str) -> str | None:
    """``name`` or its longest prefix that is a module (an imported function's module)."""
    known = module_files()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _imports(nodes: list[ast.stmt] | ast.AST, package: str) -> set[str]:
    """speciesgan modules imported anywhere in ``nodes``."""
    found = set()
    roots = nodes if isinstance(nodes, list) else [nodes]
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                names = [f"{source}.{alias.name}" for alias in node.names] + [source]
            else:
                continue
            found |= {m for name in names if (m := module_of(name)) is not None}
    return found


def _parents(module: str) -> set[str]:
    """The packages a module's import runs: ``a.b.c`` imports ``a`` and ``a.b`` first."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


@functools.cache
def _direct(module: str) -> frozenset[str]:
    path = module_files()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return frozenset(_imports(ast.parse(path.read_text(), str(path)), package))


def closure(entries: set[str]) -> set[str]:
    """``entries`` and every speciesgan module they import, transitively."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [m for m in (_direct(module) | _parents(module)) if m not in seen]
    return seen - LEFT_OUT


def _command_names(test: ast.expr) -> set[str]:
    """The subcommands an ``if cmd == "x"`` (or ``cmd in (...)``) branch handles."""
    names = set()
    for node in ast.walk(test):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name):
            if node.left.id != "cmd":
                continue
            for right in node.comparators:
                for constant in ast.walk(right):
                    if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                        names.add(constant.value)
    return names


@functools.cache
def _entries() -> dict[str, frozenset[str]]:
    """Subcommand -> the modules its branch of ``cli.run`` imports (and its helpers')."""
    path = module_files()["speciesgan.cli"]
    tree = ast.parse(path.read_text(), str(path))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    entries: dict[str, set[str]] = {}
    branch = next((n for n in functions["run"].body if isinstance(n, ast.If)), None)
    while isinstance(branch, ast.If):
        modules = _imports(branch.body, "speciesgan")
        for node in ast.walk(ast.Module(body=branch.body, type_ignores=[])):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                helper = functions.get(node.func.id)
                if helper is not None:
                    modules |= _imports(helper.body, "speciesgan")
        for name in _command_names(branch.test):
            entries.setdefault(name, set()).update(modules)
        branch = branch.orelse[0] if len(branch.orelse) == 1 else None
    return {name: frozenset(modules) for name, modules in entries.items()}


def stage_files(command: str, root: Path | None = None) -> list[str]:
    """The source files of subcommand ``command``'s code, relative to ``root`` (the
    repository holding ``src/``; none for the ``CODE_FREE`` ones, nor when the
    package is installed outside ``root``)."""
    root = (SRC.parent if root is None else root).resolve()
    if command in CODE_FREE or not PACKAGE.is_relative_to(root):
        return []
    entries = _entries()
    if command not in entries:
        raise KeyError(f"no subcommand {command!r} in speciesgan.cli.run")
    modules = closure(set(entries[command]))
    files = {module_files()[m] for m in modules}
    for module in modules & set(DATA_FILES):
        files |= {module_files()[module].parent / name for name in DATA_FILES[module]}
    return sorted(path.relative_to(root).as_posix() for path in files)


def stage_digest(command: str) -> str | None:
    """SHA-256 (first 16 hex digits) of the code subcommand ``command`` runs
    (None for the ``CODE_FREE`` ones)."""
    if command in CODE_FREE:
        return None
    digest = hashlib.sha256()
    root = SRC.parent
    for name in stage_files(command, root):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def shell_command(shell: str | None) -> str | None:
    """The subcommand of a rule's shell command ``speciesgan COMMAND ...``, else None."""
    words = (shell or "").split()
    return words[1] if len(words) > 1 and words[0] == "speciesgan" else None
