"""``serve.py``, what ``make run`` starts: the first paint's imports warmed up once the server
is up, and only those (the browser suite runs the whole launcher)."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest

import serve

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("warm_probe_")]:
        del sys.modules[name]


def test_imports_only_once_the_server_is_up(module_dir):
    (module_dir / "warm_probe_a.py").write_text("VALUE = 1\n")
    seen_before_ready = []
    answers = iter([False, False, True])

    def ready() -> bool:
        seen_before_ready.append("warm_probe_a" in sys.modules)
        return next(answers)

    serve.warm_up(("warm_probe_a",), ready=ready, limit=5)

    assert seen_before_ready == [False, False, False]
    assert sys.modules["warm_probe_a"].VALUE == 1


def test_a_server_that_never_says_ready_delays_the_imports_a_bounded_time(module_dir):
    (module_dir / "warm_probe_b.py").write_text("VALUE = 2\n")
    started = time.monotonic()

    serve.warm_up(("warm_probe_b",), ready=lambda: False, limit=0.1)

    assert 0.1 <= time.monotonic() - started < 2
    assert "warm_probe_b" in sys.modules


def test_a_module_that_fails_to_import_is_left_to_the_script_run(module_dir):
    (module_dir / "warm_probe_c.py").write_text("raise RuntimeError('broken settings')\n")
    (module_dir / "warm_probe_d.py").write_text("VALUE = 4\n")

    serve.warm_up(("warm_probe_c", "warm_probe_d"), ready=lambda: True)

    assert "warm_probe_c" not in sys.modules
    assert "warm_probe_d" not in sys.modules  # stopped at the first failure: nothing half-done


def test_the_warm_up_covers_what_the_app_imports_before_its_navigation():
    """Every module ``streamlit_app.py`` imports (Streamlit aside, already loaded) is warmed up;
    an import added there without adding it here would cost the first paint again."""
    tree = ast.parse((ROOT / "streamlit_app.py").read_text())
    imported = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
    app_modules = {m for m in imported if m != "__future__" and m.split(".")[0] != "streamlit"}

    assert app_modules, "streamlit_app.py imports the app's modules"
    assert app_modules <= set(serve.BEFORE_NAVIGATION)


def test_nothing_heavy_is_warmed_before_the_navigation():
    """pandas, DuckDB and Plotly load after the navigation is on screen: warming them with the
    first paint would take its CPU."""
    code = (
        "import sys; import streamlit.web.cli; before = set(sys.modules); import serve; "
        "serve.warm_up(ready=lambda: True); "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    loaded = set(ast.literal_eval(out.stdout.strip()))
    assert "ui" in loaded
    assert not loaded & {"pandas", "duckdb", "plotly", "httpx"}
