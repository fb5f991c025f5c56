"""credly-ops: the operations console for Credly badge programs, as a Python package.

No Streamlit in here: the app (``streamlit_app.py``, ``ui.py``, ``pages/``) and the command line
(:mod:`credly_ops.cli`) are two faces over the same functions. The map of what lives where, and
how data flows between the parts, is ``docs/architecture.md``.
"""
