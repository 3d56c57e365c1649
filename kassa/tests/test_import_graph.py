"""The apps import one another one way only, as DESIGN.md's "Ownership and locks" orders them,
and never a private name of another app. Read from the source with `ast`, every import
(function-level ones too), so that a lazy import cannot hide a circle.

Layers, from the top: the interfaces (the top-level modules — `api`, `cli`, `urls`, the
middleware —, the `web` app, and each app's `api` and `admin` modules, which render and
parse); then reports → refunds → packages → billing → ledger → webhooks → tenancy → audit →
core, with gateways between billing/refunds and core. An app may import only the apps below it.

`audit` (the audit log) sits lowest of the apps, on core alone: every write — tenancy's
settings, users and tokens included — appends its entry through `kassa.audit.services.record`
in its own transaction.

`documents` (PDF layout and verification codes) sits on core alone too: each app that owns
figures builds its own document (billing its statements, refunds its receipts).

`webhooks` (outgoing webhooks) sits just above tenancy: every app that changes money —
billing, packages, refunds, and the later ones (credit, disputes, approvals) — announces its
events through `kassa.webhooks.events.emit` in its own transaction, so webhooks must be below
all of them; it needs only the organization and its admins (tenancy) and the outbox and locks
(core). It knows no payment or refund: each app renders its own object for the event.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # kassa/

# app → the apps it may import (besides itself).
BELOW: dict[str, set[str]] = {
    "core": set(),
    "audit": {"core"},
    "documents": {"core"},
    "tenancy": {"audit", "core"},
    "webhooks": {"tenancy", "audit", "core"},
    "ledger": {"webhooks", "audit", "tenancy", "core"},
    "gateways": {"core"},
    "billing": {"documents", "ledger", "webhooks", "audit", "tenancy", "gateways", "core"},
    "packages": {"documents", "billing", "ledger", "webhooks", "audit", "tenancy", "core"},
    "refunds": {"documents", "packages", "billing", "ledger", "webhooks", "audit", "tenancy",
                "gateways", "core"},
    "reports": {"documents", "refunds", "packages", "billing", "ledger", "webhooks", "audit",
                "tenancy", "gateways", "core"},
}
INTERFACE_MODULES = {"api", "admin"}  # an app's HTTP and admin faces: above every app


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "tests" in parts or "migrations" in parts:
            continue
        name = ".".join(("kassa", *parts)).removesuffix(".__init__")
        found[name] = path
    return found


def imports_of(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(module imported, name imported from it or None, line) for every `kassa` import."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names
                    if alias.name.startswith("kassa")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if base.startswith("kassa"):
                out += [(base, alias.name, node.lineno) for alias in node.names]
    return out


def layer(module: str) -> str:
    """The app a module belongs to, or "interface"."""
    parts = module.split(".")
    if len(parts) < 3 or parts[1] not in BELOW:
        return "interface"  # kassa.api, kassa.cli, kassa.web.…
    if parts[2] in INTERFACE_MODULES:
        return "interface"
    return parts[1]


def allowed(source: str, target: str) -> bool:
    """Whether module `source` may import module `target`."""
    if layer(source) in ("interface", layer(target)):
        return True
    return layer(target) != "interface" and layer(target) in BELOW[layer(source)]


def edges() -> list[tuple[str, str, str]]:
    """(importing module, imported module, where) for every import between Kassa modules."""
    known = modules()
    out = []
    for name, path in known.items():
        for target, imported, line in imports_of(name, path):
            # `from kassa.billing import allocation` imports a module, not a name.
            if imported and f"{target}.{imported}" in known:
                target = f"{target}.{imported}"
            out.append((name, target, f"{path.relative_to(ROOT.parent)}:{line}"))
    return out


def test_every_app_imports_only_the_apps_below_it():
    wrong = [f"{where}: {source} imports {target}" for source, target, where in edges()
             if not allowed(source, target)]
    assert wrong == []


def test_the_module_graph_has_no_circle():
    graph: dict[str, set[str]] = {}
    for source, target, _ in edges():
        if target != source:
            graph.setdefault(source, set()).add(target)
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            if circle := visit(nxt, [*path, node]):
                return circle
        done.add(node)
        return None

    circles = [c for c in (visit(node, []) for node in sorted(graph)) if c]
    assert circles == [], " → ".join(circles[0]) if circles else ""


def test_no_app_uses_a_private_name_of_another():
    wrong = []
    for name, path in modules().items():
        for target, imported, line in imports_of(name, path):
            if imported and imported.startswith("_") and layer(target) != layer(name):
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: {imported} of {target}")
    assert wrong == []


@pytest.mark.parametrize(("source", "target", "expected"), [
    ("kassa.billing.services", "kassa.refunds.models", False),  # upward
    ("kassa.refunds.services", "kassa.billing.models", True),
    ("kassa.core.money", "kassa.tenancy.models", False),
    ("kassa.billing.api", "kassa.refunds.api", True),  # an interface above every app
    ("kassa.gateways.stripe", "kassa.refunds.models", False),
    ("kassa.refunds.lifecycle", "kassa.webhooks.events", True),  # refunds announce events
    ("kassa.webhooks.events", "kassa.refunds.models", False),  # webhooks know no refund
])
def test_the_rule_itself_tells_up_from_down(source, target, expected):
    assert allowed(source, target) is expected


def test_the_reader_sees_every_kind_of_import(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("import kassa.core.money\nfrom kassa.refunds import lifecycle\n"
                      "def f():\n    from kassa.billing.models import _hidden\n")
    found = imports_of("kassa.packages.example", source)
    assert found == [("kassa.core.money", None, 1), ("kassa.refunds", "lifecycle", 2),
                     ("kassa.billing.models", "_hidden", 4)]
