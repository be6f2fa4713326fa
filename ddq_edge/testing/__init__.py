"""Test helpers shared by the Python tests and the runtime conformance suites."""
