"""The suite's own layout: conftest files hold fixtures, which pytest hands to the tests;
builders and helpers are imported from the modules that hold them (tests/factories.py,
the helpers modules and the platform helpers), never from a conftest or another test
module; rows are built by tests/factories.py; the sandbox platform is started by one
fixture."""

import ast
from pathlib import Path

TESTS = Path(__file__).parent
ROOT = TESTS.parent
BUILDERS_MAY_LIVE_IN = {TESTS / "factories.py", TESTS / "helpers.py"}


def modules():
    for path in sorted(TESTS.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        # `from tests.x import test_y` names a module too; a relative import keeps its dots
        module = "." * node.level + (node.module or "")
        return [module] + [f"{module.rstrip('.')}.{alias.name}" for alias in node.names]
    return []


def test_no_module_imports_from_a_test_module():
    found = [
        f"{where(path, node)} imports {name}"
        for path, tree in modules()
        for node in ast.walk(tree)
        for name in imported_modules(node)
        if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
    ]
    assert not found, (
        "move what is shared to a conftest, tests/factories.py or tests/helpers.py:\n"
        + "\n".join(found)
    )


def test_no_module_imports_from_a_conftest():
    found = [
        f"{where(path, node)} imports {name}"
        for path, tree in modules()
        for node in ast.walk(tree)
        for name in imported_modules(node)
        if "conftest" in name.lstrip(".").split(".")
    ]
    assert not found, (
        "a conftest holds fixtures only; import helpers from tests/helpers.py or a "
        "helpers module beside the conftest, builders from tests/factories.py:\n" + "\n".join(found)
    )


def test_builders_are_defined_in_the_factories():
    found = [
        f"{where(path, node)} defines {node.name}"
        for path, tree in modules()
        if path not in BUILDERS_MAY_LIVE_IN and path.name != "conftest.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith(("make_", "add_"))
    ]
    assert not found, "build rows in tests/factories.py:\n" + "\n".join(found)


def test_the_sandbox_platform_is_started_by_one_fixture():
    found = [
        where(path, node)
        for path, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "SandboxServer"
    ]
    assert [place.split(":")[0] for place in found] == ["tests/conftest.py"], (
        "use conftest's `platform` (mark the module `sandbox`):\n" + "\n".join(found)
    )
