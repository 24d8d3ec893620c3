"""The pinned reproduction environment: flake.nix parses, flake.lock pins nixpkgs, the pip
lock pins exact versions. Building the shell needs nixpkgs from the network, which this
machine cannot reach; that part is stated in the README as not verified here."""

import json
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("nix-instantiate") is None,
                    reason="nix-instantiate not installed (Debian package nix-bin)")
def test_flake_nix_parses():
    completed = subprocess.run(["nix-instantiate", "--parse", str(ROOT / "flake.nix")],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr


def test_flake_lock_pins_the_nixpkgs_named_in_flake_nix():
    lock = json.loads((ROOT / "flake.lock").read_text())
    locked = lock["nodes"]["nixpkgs"]["locked"]
    assert re.fullmatch(r"[0-9a-f]{40}", locked["rev"])
    assert locked["narHash"].startswith("sha256-")
    flake = (ROOT / "flake.nix").read_text()
    assert locked["rev"] in flake
    assert f'nixos-{lock["nodes"]["nixpkgs"]["original"]["ref"].split("-")[1]}' in flake


def test_dev_shell_provides_what_the_project_needs():
    flake = (ROOT / "flake.nix").read_text()
    for package in ("tensorflow", "keras", "keras-tuner", "numpy", "matplotlib", "pytest"):
        assert f"ps.{package}\n" in flake
    assert "devShells" in flake and "PYTHONPATH" in flake


def test_requirements_lock_pins_exact_versions_of_the_dependencies():
    lines = [line.strip() for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    pins = dict(line.split("==") for line in lines)
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^=\s]+", line) for line in lines)
    for package in ("tensorflow", "keras", "keras-tuner", "numpy", "matplotlib", "pytest"):
        assert package in {name.lower().replace("_", "-") for name in pins}, package
