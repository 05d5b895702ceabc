"""Test helpers shared by the test suites (stand-in servers), importable as ``support``."""
