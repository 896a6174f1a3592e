"""The layer package's shape holds: no import cycles, nothing imports upward, no service imports an adapter,
and the rules (domain) and jobs (services) import no AWS SDK, no OpenAI client and no Powertools."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "reengage"
SDKS = ("boto3", "botocore", "pynamodb", "openai", "aws_lambda_powertools", "pydantic")

# What each part of the package may import from the package (beyond itself).
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "ports": {"domain"},
    "settings": {"domain"},
    "observability": set(),
    "services": {"domain", "ports", "settings"},
    "adapters": {"domain", "ports"},
    "wiring": {"domain", "ports", "settings", "adapters"},
}
PURE = {"domain", "ports", "settings", "services"}


def part_of(module: str) -> str:
    """`reengage.services.sender` -> services; `reengage.ports` -> ports."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
GRAPH = {
    name: {target for target in imports_of(path) if target in MODULES and target != name}
    for name, path in MODULES.items()
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_nothing_imports_upward_or_sideways(module: str) -> None:
    part = part_of(module)
    if part == "__init__" or module == "reengage":
        return
    for target in GRAPH[module]:
        target_part = part_of(target)
        if target == "reengage" or target_part == part:
            continue
        assert target_part in ALLOWED[part], f"{module} ({part}) imports {target} ({target_part})"


@pytest.mark.parametrize("module", sorted(name for name in MODULES if part_of(name) in PURE))
def test_rules_and_jobs_import_no_sdk(module: str) -> None:
    sdks = {target for target in imports_of(MODULES[module]) if target.split(".")[0] in SDKS}
    assert not sdks, f"{module} imports {sorted(sdks)}: only adapters, wiring and observability may"


def test_no_import_cycles() -> None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(module) :], module])
        visiting.append(module)
        for target in GRAPH[module]:
            visit(target)
        visiting.pop()
        done.add(module)

    for module in MODULES:
        visit(module)


def test_the_check_sees_a_violation() -> None:
    # Given a service that imported an adapter, the rule above would name it
    assert "adapters" not in ALLOWED["services"]
    assert imports_of(MODULES["reengage.wiring"]) >= {"reengage.adapters.leads_table"}
