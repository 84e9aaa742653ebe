"""The scoring server (`flights-serve`): follows the registry's `champion` alias, serves it over
HTTP and records what it served. It imports no Dagster (tests/unit/test_layers.py imports it in
a fresh interpreter and checks sys.modules)."""
