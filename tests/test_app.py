"""The app frame, driven by Streamlit's AppTest against the demo world."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app(demo_site, monkeypatch, tmp_path) -> AppTest:
    demo_site.env(monkeypatch, demo_site.copy_cache(tmp_path / "cache.duckdb"))
    monkeypatch.chdir(ROOT)
    st.cache_resource.clear()  # one workspace per server process: a fresh one per test
    st.cache_data.clear()
    return AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)


def sidebar_text(at: AppTest) -> str:
    return (
        " ".join(m.value for m in at.sidebar.markdown)
        + " "
        + " ".join(c.value for c in at.sidebar.caption)
    )


def test_the_frame_shows_organization_environment_and_last_sync(app: AppTest, demo_site) -> None:
    app.run()
    assert not app.exception
    text = sidebar_text(app)
    assert "DEMO" in text
    assert "5f6d0c61-8a8a-4a53-9c1e-0d3c1ab7de00" in text
    assert (
        f"{len(demo_site.world.badges_for('5f6d0c61-8a8a-4a53-9c1e-0d3c1ab7de00')):,} badges"
        in text
    )


def sidebar_only() -> None:
    import ui

    ui.sidebar(ui.workspace())


def test_sync_now_syncs_the_demo_and_says_so(app: AppTest) -> None:
    # the sidebar on its own (AppTest does not carry widget clicks across st.navigation)
    app = AppTest.from_function(sidebar_only, default_timeout=60)
    app.run()
    assert "Last sync" in sidebar_text(app)
    app.sidebar.button[0].click().run()
    assert not app.exception
    assert not app.sidebar.error, [e.value for e in app.sidebar.error]
    assert any(s.value.startswith("Synced:") for s in app.sidebar.success)
    assert "just now" in sidebar_text(app)
