"""Operator commands, run in an operator's shell or a team's CI: each is `main(argv) -> int`
(0 done, 1 a finding such as NOT REPRODUCED, 2 a request it cannot carry out, said in one line)
and a `flights-*` entry point (pyproject.toml). They import plain logic and resources, never an
asset module nor pipelines.orchestration (tests/unit/test_layers.py)."""
