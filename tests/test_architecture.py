"""The package's shape: model folders independent, no import cycles, small files and
functions, no import inside a function but of optional dependencies, a docstring on every
public name, one test module per model, and importing anomvae does not import MLflow."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "anomvae"
TESTS = Path(__file__).resolve().parent
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
"""Lines of a function's body, its docstring excepted."""

LAZY_IMPORTS = ("mlflow", "pyspark", "pyarrow", "PIL", "matplotlib", "pyod", "pythresh", "anomvae.lifecycle")
"""What may be imported inside a function: optional dependencies, and MLflow (with the
modules built on it), which ``import anomvae`` must not import."""


def modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name, parsed."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), filename=str(path))
    return found


MODULES = modules()


def is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file()


def imported_names(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute names of the modules an import statement reaches."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package(module) else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module
    submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES]
    return submodules or [target]


def top_level_imports(tree: ast.Module):
    """Import statements run when the module is imported (function bodies excluded)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.ClassDef, ast.If, ast.Try, ast.With)):
            stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, tree in MODULES.items():
        targets = {t for node in top_level_imports(tree) for t in imported_names(name, node)}
        graph[name] = {t for t in targets if t in MODULES and t != name}
    return graph


def functions(tree: ast.Module):
    return (node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))


def test_no_model_folder_imports_another():
    offences = []
    for name, tree in MODULES.items():
        parts = name.split(".")
        if len(parts) < 3 or parts[1] != "models":
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in imported_names(name, node):
                    other = target.split(".")
                    if target.startswith("anomvae.models.") and other[2] != parts[2]:
                        offences.append(f"{name} imports {target}")
    assert not offences, "model folders must import shared code only:\n" + "\n".join(offences)


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_imports_inside_functions_are_optional_dependencies_only():
    offences = []
    for name, tree in MODULES.items():
        for function in functions(tree):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    for target in imported_names(name, node):
                        if not target.split(".")[0] in LAZY_IMPORTS and not target.startswith(LAZY_IMPORTS):
                            offences.append(f"{name}.{function.name} imports {target}")
    assert not offences, "move these imports to the top of the module:\n" + "\n".join(sorted(set(offences)))


def test_files_and_functions_are_short():
    offences = []
    for name, tree in MODULES.items():
        path = PACKAGE.parent / (name.replace(".", "/") + ("/__init__.py" if is_package(name) else ".py"))
        lines = len(path.read_text().splitlines())
        if lines > MAX_FILE_LINES:
            offences.append(f"{path.name}: {lines} lines")
        for function in functions(tree):
            first = function.body[1 if ast.get_docstring(function) and len(function.body) > 1 else 0]
            length = function.end_lineno - first.lineno + 1
            if length > MAX_FUNCTION_LINES:
                offences.append(f"{name}.{function.name}: {length} lines")
    assert not offences, "\n".join(offences)


def public_definitions(module_name: str):
    """Public classes and functions defined in a module, and the public methods of its classes."""
    module = importlib.import_module(module_name)
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module_name:
            continue
        if inspect.isfunction(value):
            yield name, value
        elif inspect.isclass(value):
            yield name, value
            for member_name, member in vars(value).items():
                if not member_name.startswith("_") and (inspect.isfunction(member) or isinstance(member, (property, classmethod, staticmethod))):
                    yield f"{name}.{member_name}", getattr(value, member_name)


def test_every_public_name_has_a_docstring():
    """Methods that implement an interface inherit its docstring, as ``help`` and Sphinx show it."""
    public_modules = [name for name in MODULES if "._" not in name]
    missing = [name for name in public_modules if not ast.get_docstring(MODULES[name])]
    missing += [f"{module}.{name}" for module in public_modules
                for name, value in public_definitions(module) if not inspect.getdoc(value)]
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)


def test_one_test_module_per_model():
    models = sorted(path.name for path in (PACKAGE / "models").iterdir()
                    if (path / "__init__.py").is_file())
    missing = [model for model in models if not (TESTS / f"test_{model}.py").is_file()]
    assert not missing, f"models without tests/test_<model>.py: {missing}"


def test_importing_anomvae_does_not_import_mlflow():
    code = "import sys, anomvae; print('mlflow' in sys.modules); anomvae.tracking; print('mlflow' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert run.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("name", ["tracking", "log_model"])
def test_mlflow_names_still_reached_from_anomvae(name):
    import anomvae

    assert getattr(anomvae, name) is not None
