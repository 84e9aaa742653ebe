"""The layering: every stage's logic, the served model's package and the shared plain modules
import no Dagster (so tests, benchmarks and the operator CLIs can use them alone); the served
model's package imports no SQLAlchemy either; nothing in resources/ imports assets/ or pipelines/."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOGIC = sorted(
    [".".join(p.relative_to(REPO).with_suffix("").parts) for p in (REPO / "assets").glob("*/logic.py")]
    + ["assets.common", "assets.validation.expectations", "assets.monitoring.reports", "resources.records",
       "resources.settings", "resources.schemas", "resources.source_files", "resources.errors", "pipelines.policy",
       "resources.alerts", "pipelines.served_traffic"]
)


def _loaded_after_import(modules: list[str]) -> set[str]:
    code = f"import sys, importlib\nfor m in {modules!r}: importlib.import_module(m)\nprint(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_there_is_a_logic_module_per_stage():
    stages = {p.parent.name for p in (REPO / "assets").glob("*/asset.py")}
    assert stages == {p.parent.name for p in (REPO / "assets").glob("*/logic.py")}
    assert stages == {"ingestion", "validation", "features", "training", "evaluation", "deployment", "scoring", "monitoring"}


def test_importing_every_logic_module_leaves_dagster_out():
    loaded = _loaded_after_import(LOGIC)
    assert set(LOGIC) <= loaded
    assert not {m for m in loaded if m == "dagster" or m.startswith("dagster.")}


def test_the_served_model_package_imports_neither_dagster_nor_sqlalchemy():
    loaded = _loaded_after_import(["served_model.model", "served_model.files", "served_model.features"])
    assert not {m.split(".")[0] for m in loaded} & {"dagster", "sqlalchemy", "assets", "resources", "pipelines"}


def test_resources_import_neither_assets_nor_pipelines():
    offenders = []
    for path in (REPO / "resources").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("assets", "pipelines")]
    assert offenders == []


def test_data_versions_of_many_frames_equal_each_frames_own():
    """Daily batches hashed together give each batch the version it has alone, also when the
    batches differ in columns or dtypes, or have no rows."""
    import pandas as pd

    from assets.common import data_version, data_versions_of

    frames = [pd.DataFrame({"a": ["1", None, "3"], "b": ["x", "y", "z"]}),
              pd.DataFrame({"a": pd.Series(["1", "2"], dtype="str"), "b": [None, "q"]}),
              pd.DataFrame({"a": [], "b": []}),
              pd.DataFrame({"b": ["x"], "a": ["1"]}),  # other column order: other columns
              pd.DataFrame({"a": ["1", None, "3"], "b": ["x", "y", "z"]})]
    versions = data_versions_of(frames)
    assert versions == [data_version(f) for f in frames]
    assert versions[0] == versions[4] and len(set(versions[:4])) == 4
