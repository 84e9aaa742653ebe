"""The failures that retrying cannot fix, shared by the stores and the stages' logic (no Dagster)."""


class DataProblem(ValueError):
    """Bad or missing data, a failed gate, a store built by an older schema: retrying the step
    cannot fix it. The Dagster side fails such a step at once (assets/asset_factory.py)."""
