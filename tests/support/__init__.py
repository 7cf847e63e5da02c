"""Helpers the tests share, imported as `from support.models import tiny_classifier` (pyproject.toml puts
tests/ on the path). Fixtures are in tests/conftest.py and tests/integration/conftest.py; this package holds
plain functions and classes, which the worker scripts the integration tests start import too."""
