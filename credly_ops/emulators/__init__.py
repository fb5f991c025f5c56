"""Local stand-ins for the services credly-ops talks to, for the demo and the tests."""
