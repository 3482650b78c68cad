"""The code a stage runs, as a digest: how an edit of the code reaches the results.

Snakemake reruns a job when its rule's ``params`` change (the default rerun
triggers include ``params``), so each rule that runs a ``speciesgan`` subcommand
puts ``stage_digest(subcommand)`` among its params: a SHA-256 of the source files
of every ``speciesgan`` module that subcommand imports, directly or through
others.  Editing ``gan/loss.py`` changes train-gan's digest (and so reruns it and
what follows from its outputs); editing ``report/page.py`` leaves it alone.  The
DVC export lists the same files as each stage's deps (``stage_files``).

The modules are found without importing anything: each subcommand is a
``Subcommand`` in a package's ``commands`` module, whose ``run`` function (and
the module's functions it calls) names the modules it imports, and an ``ast``
walk of each module's imports (at any depth, lazy ones too) gives the rest.  The
``commands`` modules themselves, ``speciesgan.subcommand``, ``cli.py`` and the
package's ``__init__`` are left out: they parse arguments and would make a stage
rerun for a subcommand's help text.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

from speciesgan.util.schema_defaults import SCHEMA_FILE

PACKAGE = Path(__file__).resolve().parents[1]
SRC = PACKAGE.parent
LEFT_OUT = frozenset(
    {"speciesgan", "speciesgan.cli", "speciesgan.__main__", "speciesgan.subcommand"}
)
COMMANDS_MODULE = "commands"
"""The name of a package's module of subcommands (``speciesgan.data.commands``): left
out too, as argument parsing."""
CODE_FREE = frozenset({"download"})
"""Subcommands whose output the code does not decide: a download's bytes are the
URL's, pinned by their SHA-256 (re-downloading for an edit of the retry loop would
only cost time)."""
DATA_FILES = {"speciesgan.util.schema_defaults": (SCHEMA_FILE,)}
"""Files of the package (paths relative to it) that a module reads: the config schema,
whose one reader gives every stage its defaults (and ``speciesgan.config`` its checks)."""


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
    return {m for m in seen - LEFT_OUT if not is_commands_module(m)}


def is_commands_module(module: str) -> bool:
    """``module`` is a package's ``commands`` module: subcommands' arguments and handlers."""
    return module.rpartition(".")[2] == COMMANDS_MODULE


def _bindings(tree: ast.Module, package: str) -> dict[str, str]:
    """Name -> speciesgan module, for the names a module's top-level imports bind."""
    bound = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                module = module_of(f"{source}.{alias.name}")
                if module is not None:
                    bound[alias.asname or alias.name] = module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                module = module_of(alias.name)
                if module is not None and alias.asname:
                    bound[alias.asname] = module
    return bound


def _subcommands(tree: ast.Module) -> dict[str, str]:
    """Subcommand name -> the name of its ``run`` function, for each top-level
    ``X = Subcommand("name", add_arguments, run, ...)`` of a commands module."""
    found = {}
    for node in tree.body:
        call = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if not isinstance(call, ast.Call) or getattr(call.func, "id", None) != "Subcommand":
            continue
        given = dict(zip(("name", "add_arguments", "run"), call.args, strict=False))
        given.update({k.arg: k.value for k in call.keywords if k.arg})
        name, run = given.get("name"), given.get("run")
        if isinstance(name, ast.Constant) and isinstance(run, ast.Name):
            found[str(name.value)] = run.id
    return found


def _handler_modules(
    run: str, functions: dict[str, ast.FunctionDef], bound: dict[str, str], package: str
) -> set[str]:
    """The modules function ``run`` imports, inside it or through a top-level import of a
    name it uses, and those of the module's functions it calls (transitively)."""
    modules: set[str] = set()
    done: set[str] = set()
    todo = [run]
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        function = functions[name]
        modules |= _imports(function.body, package)
        for node in ast.walk(function):
            if isinstance(node, ast.Name) and node.id in functions:
                todo.append(node.id)
            elif isinstance(node, ast.Name) and node.id in bound:
                modules.add(bound[node.id])
    return modules


@functools.cache
def _entries() -> dict[str, frozenset[str]]:
    """Subcommand -> the modules its ``run`` function imports (and its helpers')."""
    entries: dict[str, frozenset[str]] = {}
    for module, path in module_files().items():
        if not is_commands_module(module):
            continue
        tree = ast.parse(path.read_text(), str(path))
        package = module.rpartition(".")[0]
        functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        bound = _bindings(tree, package)
        for name, run in _subcommands(tree).items():
            entries[name] = frozenset(_handler_modules(run, functions, bound, package))
    return entries


def stage_files(command: str, root: Path | None = None) -> list[str]:
    """The source files of subcommand ``command``'s code, relative to ``root`` (the
    repository holding ``src/``; none for the ``CODE_FREE`` ones, nor when the
    package is installed outside ``root``)."""
    root = (SRC.parent if root is None else root).resolve()
    if command in CODE_FREE or not PACKAGE.is_relative_to(root):
        return []
    entries = _entries()
    if command not in entries:
        raise KeyError(f"no subcommand {command!r} in any speciesgan commands module")
    modules = closure(set(entries[command]))
    files = {module_files()[m] for m in modules}
    for module in modules & set(DATA_FILES):
        files |= {PACKAGE / name for name in DATA_FILES[module]}
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
