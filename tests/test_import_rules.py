"""The layers, checked: who may import whom, no cycles, no imports tucked into functions to dodge one.

Walks every module of the four packages with :mod:`ast` (nothing is imported), resolves relative
imports, and checks the rules of docs/architecture.md:

- ``engine`` imports nothing of the project;
- ``control_plane`` imports neither ``bench`` nor ``callagent``;
- only ``callagent`` imports ``bench``, and only inside functions (the local mode is chosen at run time);
- ``bench`` imports no ``callagent`` module but the package itself (its public ``callagent`` surface);
- no cycle among module-level imports;
- no function-level import of a project module, except ``callagent`` loading ``bench`` (above) and
  the allow-list below, each with its reason.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "control_plane", "bench", "callagent")

# (importing module, imported package or module): why it imports inside a function. Not for cycles.
FUNCTION_IMPORTS_ALLOWED = {
    ("callagent.cli", "callagent"): "each subcommand loads its layer when chosen: `callagent call` (an HTTP "
                                    "client), `org` and `--help` must not load the server and the openai SDK",
    ("callagent.cli", "control_plane"): "the same: only `serve`, `migrate`, `org` and `number` need the store",
    ("callagent.cli", "engine"): "the same: only `demo --providers local` needs the provider errors",
    ("bench.campaign", ""): "its emulator runs as a separate light process (`_emulator_main`): the "
                            "server's layers load only where the server runs in-process",
    ("bench.runner", ""): "the same: the engine runs in its own process; the in-process parts load on demand",
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported project module (the longest prefix that is a module)
    line: int
    in_function: bool
    type_checking: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an import names (``a.b.c`` may name ``a.b``'s attribute ``c``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[Import] = []

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True, type_checking)
                continue
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), in_function, True)
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), in_function, type_checking)
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    prefix = ".".join(base + ([child.module] if child.module else []))
                else:
                    prefix = child.module or ""
                names = [f"{prefix}.{alias.name}" for alias in child.names] or [prefix]
            for name in names:
                target = _resolve(name)
                if target is not None and target != module:
                    out.append(Import(module, target, child.lineno, in_function, type_checking))
            visit(child, in_function, type_checking)

    visit(tree, False, False)
    return out


IMPORTS = [imp for module, path in MODULES.items() for imp in _imports(module, path)]


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _where(imp: Import) -> str:
    return f"{MODULES[imp.source].relative_to(ROOT)}:{imp.line} imports {imp.target}"


def test_the_walk_sees_the_packages() -> None:
    """A walk that found nothing would pass every rule below."""
    assert {"engine.session", "control_plane.app", "bench.runner", "callagent.cli"} <= MODULES.keys()
    assert any(i.source == "control_plane.app" and _top(i.target) == "engine" for i in IMPORTS)


def test_engine_imports_nothing_of_the_project() -> None:
    bad = [_where(i) for i in IMPORTS if _top(i.source) == "engine" and _top(i.target) != "engine"]
    assert not bad, bad


def test_control_plane_imports_neither_bench_nor_callagent() -> None:
    bad = [_where(i) for i in IMPORTS
           if _top(i.source) == "control_plane" and _top(i.target) in ("bench", "callagent")]
    assert not bad, bad


def test_only_callagent_imports_bench_and_only_when_it_runs() -> None:
    bad = [_where(i) for i in IMPORTS if _top(i.target) == "bench" and _top(i.source) != "bench"
           and (_top(i.source) != "callagent" or not i.in_function)]
    assert not bad, bad


def test_bench_uses_only_callagents_public_surface() -> None:
    bad = [_where(i) for i in IMPORTS if _top(i.source) == "bench" and _top(i.target) == "callagent"
           and i.target != "callagent"]
    assert not bad, bad


def _allowed_in_function(imp: Import) -> bool:
    if _top(imp.source) == "callagent" and _top(imp.target) == "bench":
        return True  # local mode and the bench commands, chosen at run time
    return any(imp.source == source and (not target or imp.target == target or imp.target.startswith(target + "."))
               for source, target in FUNCTION_IMPORTS_ALLOWED)


def test_no_function_level_imports_of_project_modules() -> None:
    """An import inside a function hides a cycle or a layer break from the reader."""
    bad = [_where(i) for i in IMPORTS if i.in_function and not _allowed_in_function(i)]
    assert not bad, bad


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def _edges() -> dict[str, set[str]]:
    """Module-level import edges. Importing ``a.b.c`` runs ``a`` and ``a.b`` first, so a module
    depends on its target's parent packages too (which is how package ``__init__`` cycles arise)."""
    edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if imp.in_function or imp.type_checking:
            continue
        parts = imp.target.split(".")
        for n in range(1, len(parts) + 1):
            target = ".".join(parts[:n])
            if target in MODULES and target != imp.source and not imp.source.startswith(target + "."):
                edges.setdefault(imp.source, set()).add(target)
    return edges


def test_no_import_cycles() -> None:
    cycles = _cycles(_edges())
    assert not cycles, cycles


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("source", ["from ..app import X\n", "def f():\n    from .. import app\n"])
def test_the_walker_resolves_relative_and_nested_imports(tmp_path: Path, source: str) -> None:
    fake = tmp_path / "handlers.py"
    fake.write_text(source)
    found = _imports("control_plane.api.handlers", fake)
    assert [(i.target, i.in_function) for i in found] == [("control_plane.app", "def" in source)]


# -- encapsulation: public interfaces between modules ------------------------------------------


def _private_reaches(source: str) -> list[tuple[int, str]]:
    """``obj._name`` where ``obj`` is not ``self``/``cls``: one object reading another's internals."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_control_plane_uses_other_objects_through_their_public_interface() -> None:
    """The campaign repository once reached into 23 private members of the SQL repository; no
    module of the control plane may read another object's underscored attributes."""
    bad = [f"{path.relative_to(ROOT)}:{line} {text}" for module, path in MODULES.items()
           if _top(module) == "control_plane" for line, text in _private_reaches(path.read_text())]
    assert not bad, bad


def test_the_private_reach_check_sees_one() -> None:
    assert _private_reaches("repo._fetch(1)\nself._ok\nx.__class__\n") == [(1, "repo._fetch")]


# -- size: small modules with one job --------------------------------------------------------

MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 400


SMALL_PACKAGES = ("engine", "control_plane")


def _too_big(source: str) -> list[str]:
    """What in a module's source is over the limits: the module, or a class (nested ones too)."""
    big = []
    if source.count("\n") > MAX_MODULE_LINES:
        big.append(f"{source.count(chr(10))} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
            big.append(f"class {node.name}, {node.end_lineno - node.lineno + 1} lines")
    return big


@pytest.mark.parametrize("package", SMALL_PACKAGES)
def test_modules_and_classes_stay_small(package: str) -> None:
    """A module over 600 lines or a class over 400 in engine/ or control_plane/ is doing more
    than one job. No exemptions."""
    big = [f"{path.relative_to(ROOT)}: {what}" for module, path in MODULES.items() if _top(module) == package
           for what in _too_big(path.read_text())]
    assert not big, big


def test_the_size_check_sees_a_big_module_and_a_big_nested_class() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_CLASS_LINES))
    assert _too_big("class Big:\n" + body) == [f"class Big, {MAX_CLASS_LINES + 1} lines"]
    assert _too_big("class Small:\n    pass\n") == []
    assert _too_big("def f():\n    class Inner:\n" + "    " + body.replace("\n    ", "\n        ")) == [
        f"class Inner, {MAX_CLASS_LINES + 1} lines"]
    assert _too_big("x = 1\n" * (MAX_MODULE_LINES + 1)) == [f"{MAX_MODULE_LINES + 1} lines"]
    assert _too_big("x = 1\n" * MAX_MODULE_LINES) == []
