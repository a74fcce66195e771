"""The import graph keeps the design's layers: each package imports only from its own layer or below.

    portal (the site: settings, URLs, ASGI routing, dashboard, metrics, demo)
      → releases → clusters → plumbing (live, queues, config, crypto, integrations)

`sandbox` (stand-ins for the outside world) is imported by nothing but the demo and tests, and
imports nothing of the project. No cycles between modules, and no project import hidden inside
a function to dodge one.
"""

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"portal": 3, "releases": 2, "clusters": 1, "plumbing": 0}
PROJECT = {*LAYERS, "sandbox"}
# The demo starts the sandboxes; nothing else of the product may.
MAY_IMPORT_SANDBOX = {"portal.management.commands.demo", "portal.demo_data"}
# Django's AppConfig.ready() is where an app imports its models and signal receivers.
LAZY_BY_DESIGN = {"apps.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: str | None = None) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import of a project module in `path`."""
    return [tuple(found) for found in _parsed_apart((str(path),), package)[str(path)]]


@functools.cache
def _parsed_apart(paths: tuple[str, ...], package: str | None = None) -> dict[str, list]:
    """Every file of `paths` read by `_read_imports` in a fresh interpreter.

    Not in this process: CPython 3.11's AST constructor keeps its recursion depth per
    interpreter, so a RecursionError caught elsewhere, or another thread formatting a traceback
    (which parses source) at the same moment, can make `ast.parse` here fail with "AST
    constructor recursion depth mismatch". A file of its own runs the check with nothing else.
    """
    command = [sys.executable, __file__, *(["--package", package] if package else []), *paths]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _read_imports(path: Path, package: str | None = None) -> list[tuple[str, int, bool]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PROJECT:
                found.append((name, node.lineno, id(node) in top_level))
    return found


def product_imports() -> dict[Path, list[tuple[str, int, bool]]]:
    files = product_files()
    parsed = _parsed_apart(tuple(str(p) for p in files))
    return {p: [tuple(found) for found in parsed[str(p)]] for p in files}


def product_files() -> list[Path]:
    return [
        p for package in (*LAYERS, "sandbox") for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts
    ]


def known_modules() -> set[str]:
    return {module_name(p) for p in product_files()}


def resolve(name: str, modules: set[str]) -> str:
    """`releases.models.Deployment` → `releases.models`; `plumbing.integrations.kube` stays."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def test_it_imports_only_from_the_same_layer_or_below():
    upward = []
    for path, found in product_imports().items():
        source = module_name(path)
        top = source.split(".")[0]
        for name, line, _ in found:
            target = name.split(".")[0]
            if target == "sandbox" or top == "sandbox":
                if top != target and source not in MAY_IMPORT_SANDBOX:
                    upward.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
            elif LAYERS[target] > LAYERS[top]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {name} (a layer above)")
    assert upward == []


def test_it_has_no_imports_inside_functions_to_dodge_a_cycle():
    hidden = [
        f"{path.relative_to(ROOT)}:{line} imports {name} inside a function"
        for path, found in product_imports().items()
        for name, line, at_top in found
        if not at_top and path.name not in LAZY_BY_DESIGN
    ]
    assert hidden == []


def test_it_has_no_import_cycles():
    modules = known_modules()
    graph = {m: set() for m in modules}
    for path, found in product_imports().items():
        source = module_name(path)
        for name, _, at_top in found:
            target = resolve(name, modules)
            if at_top and target != source and target in modules:
                graph[source].add(target)
    cycles = []
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" → ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_it_catches_an_upward_import(tmp_path):
    """The checker itself: a `plumbing` module importing `releases` is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from releases import flows\n\ndef f():\n    from clusters import models\n")
    found = imports(bad, package="plumbing")
    assert ("releases.flows", 1, True) in found
    assert ("clusters.models", 4, False) in found


if __name__ == "__main__":
    arguments = sys.argv[1:]
    given = arguments[1] if arguments[:1] == ["--package"] else None
    files = arguments[2:] if given else arguments
    print(json.dumps({name: _read_imports(Path(name).resolve(), given) for name in files}))
