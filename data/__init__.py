"""The small samples that ship with alum (`alum.data`) for the quickstart and the tests; README.md gives
their sources and licences."""
