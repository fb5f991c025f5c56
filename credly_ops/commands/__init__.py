"""Command-line commands beyond the core ones, one module each.

Each module defines ``add_parser(subparsers)`` that adds its command and sets ``func`` to a
handler taking the parsed arguments and returning an exit code.  :mod:`credly_ops.cli` finds
every module in this package and registers it.
"""
