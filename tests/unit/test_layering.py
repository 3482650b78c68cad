"""The package's import graph: no cycles, no import from a lower layer into a higher one.

Every import in every module of ``src/speciesgan`` counts, including those inside
functions (a lazy import is still a dependency).  Layers, lowest first; a module
may import its own layer and those below it.  Most layers are packages; the few
modules declared apart from their package say why.
"""

from __future__ import annotations

import ast
from pathlib import Path

from speciesgan.workflow.code_version import is_commands_module, module_files

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "speciesgan"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("util", ("speciesgan.util",)),
    # device, CUDA, SLURM, preemption: the training stages use them
    ("runtime", ("speciesgan.runtime",)),
    ("data", ("speciesgan.data",)),
    # the schema names the data sources (data.sources)
    ("config", ("speciesgan.config",)),
    # record formats the classifier stage writes as well as the evaluation (per-bin
    # accuracy, headline.json): they live in metrics/ but import nothing above util
    ("metric records", ("speciesgan.metrics.frequency_bins", "speciesgan.metrics.headline")),
    ("classifier", ("speciesgan.classifier",)),
    ("gan", ("speciesgan.gan",)),
    ("generate", ("speciesgan.generate",)),
    ("metrics", ("speciesgan.metrics",)),
    ("report", ("speciesgan.report",)),
    ("workflow", ("speciesgan.workflow",)),
    ("studio", ("speciesgan.studio",)),
    # commands: the CLI, each package's `commands` module (its stages' subcommands; see
    # layer_of), and doctor, which times a real GAN step
    (
        "commands",
        (
            "speciesgan",
            "speciesgan.cli",
            "speciesgan.__main__",
            "speciesgan.subcommand",
            "speciesgan.runtime.doctor",
        ),
    ),
]

TOP_ALLOWED = {"__init__", "__main__", "cli"}
MAX_TOP_MODULES = 5


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module and package of speciesgan."""
    return dict(module_files())


def _known(name: str, known: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a module (an imported function's module)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path, known: dict[str, Path]) -> set[tuple[str, int]]:
    """(speciesgan module imported, line) for every import in ``path``, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # 'from pkg import submodule' imports the submodule
            names = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name == "speciesgan" or name.startswith("speciesgan."):
                target = _known(name, known)
                if target is not None and target != module:
                    found.add((target, node.lineno))
    return found


def layer_of(module: str) -> int:
    """Index of the layer whose longest prefix matches ``module``; a package's ``commands``
    module sits with the CLI, whatever its package (it imports its stages' code to run them,
    and the train-gan handler the metrics' snapshot judge)."""
    if is_commands_module(module):
        return len(LAYERS) - 1
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (
                module.startswith(prefix + ".") and prefix != "speciesgan"
            )
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return best


def graph() -> dict[str, set[tuple[str, int]]]:
    known = modules()
    return {module: imports(module, path, known) for module, path in known.items()}


def test_every_module_is_in_a_layer() -> None:
    for module in modules():
        layer_of(module)


def test_no_module_imports_a_higher_layer() -> None:
    known = modules()
    upward = []
    for module, targets in graph().items():
        for target, line in sorted(targets):
            if layer_of(target) > layer_of(module):
                upward.append(
                    f"{known[module].relative_to(SRC.parent)}:{line}: {module} "
                    f"({LAYERS[layer_of(module)][0]}) imports {target} "
                    f"({LAYERS[layer_of(target)][0]})"
                )
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(upward)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``edges`` as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    edges = {module: {target for target, _ in targets} for module, targets in graph().items()}
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_lazy_and_relative_imports_count(tmp_path: Path) -> None:
    known = {"speciesgan.x": tmp_path / "x.py", "speciesgan.y": tmp_path / "y.py"}
    source = tmp_path / "y.py"
    source.write_text("def f():\n    from .x import g\n    import speciesgan.x\n")
    assert imports("speciesgan.y", source, known) == {("speciesgan.x", 2), ("speciesgan.x", 3)}


def test_few_modules_at_the_package_top() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in TOP_ALLOWED)
    assert len(top) <= MAX_TOP_MODULES, (
        f"{len(top)} modules at the top of src/speciesgan (at most {MAX_TOP_MODULES} besides "
        f"{', '.join(sorted(TOP_ALLOWED))}): {', '.join(top)}; put them in the package of their layer"
    )
