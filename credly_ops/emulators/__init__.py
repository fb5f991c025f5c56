"""Stand-ins for the services credly-ops talks to, for the demo and the tests.

- ``credly/``: the local Credly (a Starlette app over an in-memory, journalled world);
- ``server.py``: serve an ASGI app on a loopback port from a background thread;
- ``embedded.py``: make sure the demo's emulator answers, starting it here if not;
- ``skilljar/``: the local Skilljar (v2 tokens and enrollments, v1 webhooks, a control surface);
- ``demo_world.py``: THE deterministic demo world (the Credly side and the LMS side, as plain
  values) and its one anchor rule.

The rule: nothing in the product imports from here except the demo/embedded start-up (the
``demo`` and ``emulator`` commands, the workspace and app start in the demo environment).
The emulators may use the product's pure helpers (filters, time formats, models); never the
other way round.
"""
