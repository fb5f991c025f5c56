"""The product imports the emulators only through their start-up doors."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: what the demo/embedded start-up may use: the embedded start, the demo world, the server
START_UP = frozenset(
    {
        "credly_ops.emulators.embedded",
        "credly_ops.emulators.demo_world",
        "credly_ops.emulators.credly.app",
    }
)


def emulator_imports(path: Path) -> set[str]:
    """The ``credly_ops.emulators`` modules ``path`` imports, wherever in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            packages = ("credly_ops.emulators", "credly_ops.emulators.credly")
            if node.module in packages:  # from a package: the names are its modules
                found |= {f"{node.module}.{a.name}" for a in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {name for name in found if name.startswith("credly_ops.emulators")}


def product_files() -> list[Path]:
    files = [p for p in (ROOT / "credly_ops").rglob("*.py") if "emulators" not in p.parts]
    return [*files, ROOT / "ui.py", ROOT / "streamlit_app.py", *(ROOT / "pages").glob("*.py")]


def test_the_product_reaches_the_emulators_only_through_the_start_up() -> None:
    seen: dict[str, set[str]] = {}
    for path in product_files():
        imported = emulator_imports(path)
        if imported:
            seen[str(path.relative_to(ROOT))] = imported
    outside = {f: sorted(m - START_UP) for f, m in seen.items() if m - START_UP}
    assert outside == {}
    # the demo does start up through them (so this test looks at the right files)
    assert any("credly_ops.emulators.embedded" in m for m in seen.values())


def test_the_credly_client_package_speaks_only_to_the_real_api() -> None:
    package = ROOT / "credly_ops" / "credly"
    names = {p.stem for p in package.glob("*.py")}
    assert {"client", "errors", "filters", "pacing"} <= names
    assert not {n for n in names if n.startswith("emulator")} | (names & {"server", "embedded"})
    for path in package.glob("*.py"):
        assert emulator_imports(path) == set(), path.name
