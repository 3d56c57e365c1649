"""The two lock files hold what pyproject.toml asks for, every pin with its hashes, and the
runtime pins agree with the development ones: a dependency added to pyproject.toml without
`make lock` fails here, not on the next machine's `make install`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)$")


def pins(name: str) -> dict[str, tuple[str, int]]:
    """Canonical name → (version, number of hashes), from a lock file's requirement lines."""
    text = (ROOT / name).read_text().replace("\\\n", " ")
    found: dict[str, tuple[str, int]] = {}
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith("#"):
            continue
        m = PIN.match(line)
        assert m, f"{name}: not a pin with hashes: {line!r}"
        found[canonicalize_name(m[1])] = (m[2], m[3].count("--hash"))
    return found


def wanted(group: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [r for r in map(Requirement, lines) if r.marker is None or r.marker.evaluate()]


def test_every_pin_in_both_lock_files_has_its_hashes():
    for name in ("requirements.lock", "requirements-dev.lock"):
        locked = pins(name)
        assert locked, name
        assert not [p for p, (_, hashes) in locked.items() if hashes == 0], name


def test_the_runtime_lock_holds_every_dependency_of_the_wheel_and_no_tool():
    runtime = pins("requirements.lock")
    for req in wanted(None):
        name = canonicalize_name(req.name)
        assert name in runtime, f"{req} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(runtime[name][0], prereleases=True), (req, runtime[name])
    tools = {canonicalize_name(r.name) for r in wanted("dev")}
    assert not tools & runtime.keys()


def test_the_development_lock_holds_the_tools_at_the_runtime_lock_versions():
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    for req in wanted("dev"):
        name = canonicalize_name(req.name)
        assert name in dev, f"{req} is not in requirements-dev.lock: run `make lock`"
        assert req.specifier.contains(dev[name][0], prereleases=True), (req, dev[name])
    assert {p: v for p, (v, _) in runtime.items()} == {
        p: dev[p][0] for p in runtime if p in dev}
    assert runtime.keys() <= dev.keys()
