"""The Renewals and Health pages on the demo world: no exception, the radar's numbers, every
check shown with its state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import ui
from credly_ops.renewals import radar
from credly_ops.store import Store

PAGES = Path(__file__).resolve().parent.parent / "pages"


@pytest.fixture
def demo(demo_site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    db = demo_site.copy_cache(tmp_path / "demo.duckdb")
    demo_site.env(monkeypatch, db)
    ui.workspace.clear()
    ui.health_monitor.clear()
    st.cache_data.clear()
    yield db
    ui.workspace.clear()
    ui.health_monitor.clear()
    st.cache_data.clear()


def test_the_renewals_page_shows_the_radar(demo: Path) -> None:
    app = AppTest.from_file(str(PAGES / "renewals.py"), default_timeout=120)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    expected = radar(Store(demo))
    shown = {m.label: m.value for m in app.metric}
    assert shown["Expiring within 30 days"] == f"{len(expected.expiring(30)):,}"
    assert shown["Expired, still accepted"] == f"{len(expected.expired_accepted()):,}"
    assert len(expected.expiring(30)) > 0
    assert len(app.get("plotly_chart")) == 1
    templates = app.dataframe[0].value
    assert "Data Analytics Essentials" in set(templates["template"])


def test_the_health_page_shows_every_check(demo: Path) -> None:
    app = AppTest.from_file(str(PAGES / "health.py"), default_timeout=120)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    texts = [e.value for e in (*app.success, *app.warning, *app.error)]
    assert any("Credly token" in t and "expires in" in t for t in app.warning.values)
    assert any("Partner Sales Accreditation is archived" in t for t in app.error.values)
    assert any("Unmapped courses" in t for t in app.warning.values)
    assert len(texts) >= 7
    assert "FAIL" in app.markdown[0].value
