"""What the Dagster code server, the daemon and each run's process load: jobs, schedules,
sensors, alert sensors, the retention op and the executor choice. Each area module ends with
its own `defs = Definitions(...)`; pipelines/definitions.py merges them with the assets.

Imports: assets, resources and plain logic; never pipelines.commands nor pipelines.serving
(tests/unit/test_layers.py)."""
