"""What a handler module imports at cold start, checked in a fresh process (no timing: which modules).

The figures are benchmarks/cold_start.py's; this guard only fails when a heavy package comes back
onto a handler's import path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(sys.modules)))
"""

# Never imported by the module itself: pydantic (and the Powertools parser built on it) no longer
# checks the sender's records, nor Powertools' batch utilities (asyncio and every event data class)
# build its response; openai is imported only when an AI message is written.
NOT_AT_COLD_START = {
    "sender": (
        "pydantic",
        "pydantic_core",
        "aws_lambda_powertools.utilities.parser",
        "aws_lambda_powertools.utilities.batch",
        "aws_lambda_powertools.utilities.data_classes",
        "asyncio",
        "openai",
        "reengage.domain.airtable_mapping",  # the Airtable sync's field mapping, and the CSV import rules behind it
        "reengage.domain.imports",
    ),
}


def modules_imported_by(function: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "functions" / function / "app.py")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "shared")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return set(json.loads(result.stdout))


@pytest.mark.parametrize(("function", "packages"), NOT_AT_COLD_START.items())
def test_the_handler_module_leaves_heavy_packages_for_later(function: str, packages: tuple[str, ...]) -> None:
    # Given a fresh interpreter, when it imports the handler module as Lambda's init does
    imported = modules_imported_by(function)
    # Then none of these packages is loaded
    loaded = sorted(name for name in imported if name.startswith(packages))  # the packages and their submodules
    assert loaded == []
