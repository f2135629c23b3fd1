"""The shape of ``src/contact_import``, read from its source (an AST walk; nothing is imported).

- **Layers** (bottom first; see ``LAYERS`` and docs/architecture.md): a module imports its own
  room, rooms of lower layers, and nothing above; rooms of one layer never import each other
  (``store`` and ``providers`` sit side by side, so do ``runner``, ``connect`` and ``connected``).
- **The sandbox** is imported by no production module at module level (the CLI's ``demo``,
  ``sandbox`` and ``serve --sandbox`` import it inside the command, after checking the extra).
- **No import circles** between modules (imports under ``if TYPE_CHECKING:`` are not run, so
  they count for the layers only).
- **No module over 400 lines.**
- **No block of six lines repeated** between ``providers/google.py`` and
  ``providers/microsoft.py``, or between two sandbox modules (the same lines once comments,
  blank lines, imports and lone brackets are dropped; same-shape repeats are for the
  ``duplicates`` tool to find).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "contact_import"
ROOT = "contact_import"
MAX_LINES = 400
WINDOW = 6

# Bottom first. A room is a top-level module or package of contact_import ("<root>" is its
# __init__). Foundations: errors and logs need nothing; settings, crypto and failures need
# only them; domain (pure rules: contacts, jobs, merging) needs nothing at all.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer)
    for layer in (
        {"<root>", "errors", "logs"},
        {"settings", "crypto", "failures", "domain"},
        {"store", "providers"},  # the database; the provider adapters (apart)
        {"metrics"},  # Prometheus counters, fed facts by runners and web; reads QueueStats
        {"runner", "connect", "connected"},  # importing jobs; OAuth connect; connected accounts
        {"runtime"},  # wiring: builds stores, clients, importer, connections from Settings
        {"web"},
        {"cli"},  # `serve` runs the web app
        {"__main__", "sandbox"},  # entry point; the fake providers (imported by nobody)
    )
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        return f"{module_path(self.source)}:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(module: str) -> str:
    return next(str(p.relative_to(SRC.parent.parent)) for p in MODULES if module_name(p) == module)


MODULES = sorted(SRC.rglob("*.py"))
NAMES = {module_name(p) for p in MODULES}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def layer_of(module: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if room(module) in layer)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt], type_only: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """The statements run at import time: not function bodies (lazy imports live there)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        yield node, type_only
        if isinstance(node, ast.If):
            yield from _module_level(node.body, type_only or _is_type_checking(node))
            yield from _module_level(node.orelse, type_only)
        elif isinstance(node, ast.Try | ast.With | ast.ClassDef):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, block, []):
                    inner = child.body if isinstance(child, ast.ExceptHandler) else [child]
                    yield from _module_level(inner, type_only)


def _targets(node: ast.stmt, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    # ``from a import b``: the module a.b if there is one, else (a name in) a.
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in NAMES else base for a in node.names]


def imports_of(path: Path) -> Iterator[Import]:
    module = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node, type_only in _module_level(tree.body):
        for target in _targets(node, module, path.name == "__init__.py"):
            if target.split(".")[0] == ROOT and target != module:
                yield Import(module, target, node.lineno, type_only)


ALL_IMPORTS = [imp for path in MODULES for imp in imports_of(path)]


def layer_violations(imports: list[Import]) -> list[str]:
    found = []
    for imp in imports:
        here, there = room(imp.source), room(imp.target)
        if here == there:
            continue
        if layer_of(imp.target) > layer_of(imp.source):
            found.append(f"{imp}: {here} (layer {layer_of(imp.source)}) imports upward")
        elif layer_of(imp.target) == layer_of(imp.source):
            found.append(f"{imp}: {here} and {there} sit side by side and stay apart")
    return found


def test_every_room_has_a_layer() -> None:
    rooms = {room(name) for name in NAMES}
    assert rooms <= set().union(*LAYERS), f"give these a layer: {rooms - set().union(*LAYERS)}"


def test_no_module_imports_upward_or_sideways() -> None:
    found = layer_violations(ALL_IMPORTS)
    assert not found, "layer violations:\n  " + "\n  ".join(found)


def test_production_code_never_imports_the_sandbox_at_module_level() -> None:
    found = [
        str(imp)
        for imp in ALL_IMPORTS
        if room(imp.target) == "sandbox" and room(imp.source) != "sandbox"
    ]
    assert not found, "import the sandbox inside the command instead:\n  " + "\n  ".join(found)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle (its modules in order, the first again at the end), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for nxt in sorted(edges.get(node, ())):
            if cycle := visit(nxt, [*path, node]):
                return cycle
        done.add(node)
        return None

    return next(filter(None, (visit(n, []) for n in sorted(edges))), None)


def test_no_import_circles() -> None:
    edges: dict[str, set[str]] = {}
    for imp in ALL_IMPORTS:
        if not imp.type_only:
            edges.setdefault(imp.source, set()).add(imp.target)
    cycle = find_cycle(edges)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_module_is_over_400_lines() -> None:
    sizes = {str(p.relative_to(SRC.parent)): len(p.read_text().splitlines()) for p in MODULES}
    over = {path: n for path, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines (split them by what they hold): {over}"


def _import_lines(source: str) -> set[int]:
    return {
        line
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
    }


def _normalized(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines that say something: no blanks, comments, imports,
    lone brackets or quotes; white space folded."""
    source = path.read_text()
    imports = _import_lines(source)
    kept = []
    for number, raw in enumerate(source.splitlines(), 1):
        text = " ".join(raw.split("#", 1)[0].split())
        if number in imports or not text.strip(")]}(,:[{\"' "):
            continue
        kept.append((number, text))
    return kept


def _windows(path: Path) -> dict[tuple[str, ...], int]:
    lines = _normalized(path)
    return {
        tuple(text for _, text in lines[i : i + WINDOW]): lines[i][0]
        for i in range(len(lines) - WINDOW + 1)
    }


def repeated_blocks(paths: list[Path], base: Path = SRC) -> list[str]:
    windows = {path: _windows(path) for path in paths}
    found = []
    for a, b in itertools.combinations(paths, 2):
        shared = windows[a].keys() & windows[b].keys()
        if shared:
            block = min(shared, key=lambda w: windows[a][w])
            where = f"{a.relative_to(base)}:{windows[a][block]} and {b.relative_to(base)}:"
            found.append(f"{where}{windows[b][block]} share {WINDOW} lines: {block[0]!r} ...")
    return found


def test_no_six_lines_repeated_between_the_provider_adapters_or_sandbox_modules() -> None:
    adapters = [SRC / "providers" / "google.py", SRC / "providers" / "microsoft.py"]
    found = repeated_blocks(adapters) + repeated_blocks(sorted((SRC / "sandbox").glob("*.py")))
    assert not found, "repeated blocks (share one helper):\n  " + "\n  ".join(found)


# -- the checks can fail: each one against a made-up bad example ---------------------------


def test_the_layer_check_catches_an_upward_and_a_sideways_import() -> None:
    upward = Import("contact_import.store.jobs", "contact_import.metrics", 3, type_only=False)
    sideways = Import("contact_import.providers.google", "contact_import.store.db", 4, False)
    same_room = Import("contact_import.store.jobs", "contact_import.store.db", 5, False)
    found = layer_violations([upward, sideways, same_room])
    assert len(found) == 2
    assert "imports upward" in found[0]
    assert "side by side" in found[1]


def test_the_circle_check_finds_a_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_repeat_check_finds_a_copied_block(tmp_path: Path) -> None:
    block = "".join(f"value_{i} = compute({i})\n" for i in range(WINDOW))
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text("x = 1\n" + block)
    second.write_text("# another\n\n" + block + "y = 2\n")
    found = repeated_blocks([first, second], base=tmp_path)
    assert found == [f"first.py:2 and second.py:3 share {WINDOW} lines: 'value_0 = compute(0)' ..."]
