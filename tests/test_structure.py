"""The package keeps the shape of what it does (issue 35): two wings that do not import each other on one
floor, a run layer that asks its source registry for inputs, and every physical constant written once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import uflux_xr as ux

from .conftest import REPO

PACKAGE = REPO / "uflux_xr"
#: Layers from the floor up; a module may import its own layer and those below it, never one above.
#: ``site`` and ``grid`` share a level and may not import each other.
LAYERS = {"core": 0, "io": 1, "models": 2, "site": 3, "grid": 3, "sources": 4, "report": 4, "workflow": 5}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Modules of uflux_xr that ``path`` imports (anywhere in it, or only at module level)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports for annotations only are no dependency at run time
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            node.body = []
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("uflux_xr"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _is_module(candidate) else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("uflux_xr"))
    return found


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_the_package_root_holds_only_the_public_entry():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py"]
    assert {layer(m) for m in MODULES if m != "uflux_xr"} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module):
    own = layer(module)
    if own is None:
        return
    for target in imports(MODULES[module]):
        other = layer(target)
        if other is None:
            continue
        assert LAYERS[other] <= LAYERS[own], f"{module} imports {target}: {other} is above {own}"
        if {own, other} == {"site", "grid"}:
            raise AssertionError(f"{module} imports {target}: the tower and grid wings are independent")


def test_the_run_layer_never_imports_the_demo_worlds():
    for module, path in MODULES.items():
        if layer(module) in ("workflow", "report"):
            demo = [t for t in imports(path) if t.startswith("uflux_xr.sources.demo")]
            assert not demo, f"{module} imports {demo}: ask uflux_xr.sources for inputs"


def test_the_plan_does_not_import_the_pipeline():
    assert not any(t.startswith("uflux_xr.workflow.pipeline") for t in imports(MODULES["uflux_xr.workflow.plan"]))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_at_module_level():
    graph = {m: {t for t in imports(p, top_level_only=True) if t in MODULES and t != m} for m, p in MODULES.items()}
    # a package's __init__ importing its own modules is not a cycle of the code's design
    for m in graph:
        graph[m] = {t for t in graph[m] if not (MODULES[t].name == "__init__.py" and m.startswith(t + "."))}
    assert _cycles(graph) == []


SOURCE_NAMES = {"demo", "lazy_demo", "files"}


def test_input_source_names_are_branched_on_only_in_sources():
    from uflux_xr.sources import source_names
    from uflux_xr.workflow.config import SOURCES

    assert set(source_names()) == set(SOURCES) == SOURCE_NAMES
    for module, path in MODULES.items():
        # the registry; parsing the key; the public names (``ux.demo`` is a module)
        if layer(module) == "sources" or module in ("uflux_xr.workflow.config", "uflux_xr"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                constants = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)]
                branched = SOURCE_NAMES.intersection(c for c in constants if isinstance(c, str))
                assert not branched, f"{module}:{node.lineno} compares with source name(s) {branched}"
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                # ("files" is also the key of a file list in an input spec)
                assert not keys & {"demo", "lazy_demo"}, f"{module}:{node.lineno} maps source names"


def _code_text() -> str:
    return "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize(
    "pattern",
    [r"273\.15", r"5\.670374(?:419)?e-8|5\.67e-8", r"\b1361(?:\.0)?\b", r"\b1366\.1\b", r"\b0\.0665\b", r"\b12\.011\b"],
)
def test_each_constant_is_written_once(pattern):
    hits = re.findall(pattern, _code_text())
    assert len(hits) == 1, f"{pattern}: {len(hits)} occurrences in uflux_xr/ (core/constants.py holds the one)"


def test_the_constants_module_holds_them():
    from uflux_xr.core import constants

    assert constants.KELVIN == 273.15
    assert constants.STEFAN_BOLTZMANN == pytest.approx(5.670374419e-8, rel=1e-12)
    assert (constants.SOLAR_CONSTANT, constants.SOLAR_CONSTANT_REDDYPROC) == (1361.0, 1366.1)


def test_every_public_name_resolves_without_a_module_class_swap():
    init = (PACKAGE / "__init__.py").read_text()
    assert "__class__" not in init
    for name in ux.__all__:
        assert getattr(ux, name) is not None
    # the functions named like modules stay functions after their modules are imported
    import uflux_xr.grid.upscale  # noqa: F401
    import uflux_xr.site.gapfill  # noqa: F401
    import uflux_xr.site.partition  # noqa: F401
    import uflux_xr.workflow.pipeline  # noqa: F401

    assert all(callable(getattr(ux, n)) for n in ("gapfill", "partition", "upscale", "run"))
    assert not hasattr(ux, "synthetic")


def test_one_lloyd_taylor_and_one_net_radiation():
    defined = {}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name in ("net_radiation", "lloyd_taylor"):
                defined.setdefault(node.name, []).append(module)
    # others are thin callers of core.physics that pass their reference's values by name
    for name, modules in defined.items():
        for module in modules:
            if module != "uflux_xr.core.physics":
                source = MODULES[module].read_text()
                assert f"physics.{name}(" in source, f"{module}.{name} does not call uflux_xr.core.physics.{name}"


def test_the_layout_page_names_every_module():
    layout = (REPO / "docs" / "layout.md").read_text()
    missing = [
        str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" and p.name not in layout
    ]
    assert not missing, f"docs/layout.md does not say what these modules are for: {missing}"
