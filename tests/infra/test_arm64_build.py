"""Every function and the layer run on arm64, and the built layer really holds aarch64 code.

The oracle is the ELF header of each compiled file in `sam build`'s output (e_machine 183 is
AArch64, 62 is x86-64), not pip's or SAM's word for it. The functions run here from the twin
build for this machine (`make build-host`); it must hold the same packages at the same versions.
"""

from __future__ import annotations

import platform
import struct
import sys
from pathlib import Path

import pytest

from reengage_cli.emulator.template import load_template
from tests.conftest import ROOT

TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]
LAYER = ROOT / ".aws-sam" / "build" / "ReengageLayer" / "python"
HOST_LAYER = ROOT / ".aws-sam" / "build-host" / "ReengageLayer" / "python"
EM_AARCH64 = 183


def elf_machine(path: Path) -> int | None:
    """e_machine of an ELF file, or None when the file is not ELF."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    order = "<" if header[5] == 1 else ">"  # EI_DATA: 1 little-endian, 2 big-endian
    machine: int = struct.unpack(order + "H", header[18:20])[0]
    return machine


def compiled_files(root: Path) -> dict[str, int]:
    """Every ELF file under root (whatever its name) and its machine."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and (machine := elf_machine(path)) is not None:
            found[str(path.relative_to(root))] = machine
    return found


def distributions(root: Path) -> set[str]:
    return {path.name for path in root.glob("*.dist-info")}


def built(layer: Path, make: str) -> Path:
    if not layer.is_dir():
        pytest.fail(f"no SAM build at {layer}: run `make {make}` (make test does) before this test")
    return layer


def test_every_function_and_the_layer_are_arm64() -> None:
    assert TEMPLATE["Globals"]["Function"]["Architectures"] == ["arm64"]
    functions = [spec for spec in RESOURCES.values() if spec["Type"] == "AWS::Serverless::Function"]
    assert functions and all("Architectures" not in spec["Properties"] for spec in functions)  # none opts out
    layer = RESOURCES["ReengageLayer"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"  # what `sam build` fetches wheels for


def test_every_compiled_file_in_the_built_layer_is_aarch64() -> None:
    compiled = compiled_files(built(LAYER, "build"))
    # pydantic-core (for openai) and jiter are compiled: a layer without them was built wrong
    assert any(name.startswith("pydantic_core/") for name in compiled)
    assert any(name.startswith("jiter/") for name in compiled)
    assert {name: machine for name, machine in compiled.items() if machine != EM_AARCH64} == {}


def test_the_check_reads_the_machine_a_file_was_built_for() -> None:
    # The interpreter running this test, and the twin build's compiled files, are for this machine
    this_machine = {"x86_64": 62, "aarch64": EM_AARCH64, "arm64": EM_AARCH64}[platform.machine()]
    assert elf_machine(Path(sys.executable).resolve()) == this_machine
    assert set(compiled_files(built(HOST_LAYER, "build-host")).values()) == {this_machine}
    assert elf_machine(ROOT / "template.yaml") is None


def test_the_twin_the_tests_run_holds_the_same_packages_as_the_arm64_build() -> None:
    arm64, host = distributions(built(LAYER, "build")), distributions(built(HOST_LAYER, "build-host"))
    assert arm64 and arm64 == host
    reengage = sorted(path.relative_to(LAYER) for path in (LAYER / "reengage").rglob("*.py"))
    assert reengage == sorted(path.relative_to(HOST_LAYER) for path in (HOST_LAYER / "reengage").rglob("*.py"))
