"""The layering (docs/architecture.md): every stage's logic, the served model's package and the
shared plain modules import no Dagster (so tests, benchmarks and the operator commands can use
them alone); the served model's package imports no SQLAlchemy either; nothing in resources/
imports assets/ or pipelines/; the three processes of pipelines/ keep apart: the scoring server
imports no Dagster, an operator command no asset module nor the orchestration, the orchestration
no command nor the server."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOGIC = sorted(
    [".".join(p.relative_to(REPO).with_suffix("").parts) for p in (REPO / "assets").glob("*/logic.py")]
    + ["assets.common", "assets.validation.expectations", "assets.monitoring.reports", "resources.records",
       "resources.settings", "resources.schemas", "resources.source_files", "resources.errors", "pipelines.orchestration.policy",
       "resources.alerts", "pipelines.serving.traffic", "assets.training.calibration", "assets.training.build",
       "resources.training_data", "resources.registry", "resources.warehouse", "resources.warehouse_migrations",
       "pipelines.commands.convention", "assets.monitoring.served", "pipelines.serving.by_flight",
       "pipelines.commands.drills.incidents", "resources.day_flags"]
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


def _imports(folder: str) -> dict[str, set[str]]:
    """The modules each file under `folder` imports, at its top or inside a function."""
    found = {}
    for path in (REPO / folder).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names |= {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
        found[str(path.relative_to(REPO))] = names
    return found


def _offenders(folder: str, forbidden) -> list[str]:
    return sorted(f"{path}: {name}" for path, names in _imports(folder).items() for name in names if forbidden(name))


def _is_asset_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "assets" and parts[-1] in ("asset", "asset_factory")


def test_resources_import_neither_assets_nor_pipelines():
    assert _offenders("resources", lambda n: n.split(".")[0] in ("assets", "pipelines")) == []


def test_operator_commands_import_no_asset_module_nor_the_orchestration():
    assert _offenders("pipelines/commands", lambda n: _is_asset_module(n) or n.startswith(
        ("pipelines.orchestration", "pipelines.definitions", "pipelines.serving"))) == []
    loaded = _loaded_after_import([f"pipelines.commands.{p.stem}" for p in (REPO / "pipelines/commands").glob("[!_]*.py")])
    assert not {m for m in loaded if _is_asset_module(m) or m.startswith("pipelines.orchestration")}


def test_the_orchestration_imports_no_command_nor_the_scoring_server():
    assert _offenders("pipelines/orchestration", lambda n: n.startswith(("pipelines.commands", "pipelines.serving"))) == []
    assert _offenders("assets", lambda n: n.split(".")[0] == "pipelines") == []


def test_the_scoring_server_imports_no_dagster_in_a_fresh_interpreter():
    """Every module the server's files import, at their top or when a worker starts, loaded
    together: no Dagster, no asset module, nothing of the orchestration."""
    modules = sorted({n for names in _imports("pipelines/serving").values() for n in names
                      if n.split(".")[0] in ("pipelines", "resources", "assets", "served_model", "mlflow")
                      and _importable(n)})
    loaded = _loaded_after_import(["pipelines.serving.server", "pipelines.serving.app", "pipelines.serving.traffic", *modules])
    assert {"resources.warehouse", "resources.alerts", "mlflow.pyfunc.scoring_server"} <= set(modules)  # imported lazily
    assert not {m for m in loaded if m.split(".")[0] == "dagster" or _is_asset_module(m)
                or m.startswith(("pipelines.orchestration", "pipelines.commands"))}


def _importable(name: str) -> bool:
    """A module, not a name imported from one (`from x import Name` yields both `x` and `x.Name`)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):
        return False


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


def test_no_module_of_the_pipeline_is_over_400_lines():
    sizes = {str(p.relative_to(REPO)): len(p.read_text().splitlines())
             for folder in ("assets", "resources", "pipelines") for p in (REPO / folder).rglob("*.py")}
    assert {path: n for path, n in sizes.items() if n > 400} == {}
