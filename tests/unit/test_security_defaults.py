"""Security defaults, checked on the repository itself: loopback servers, no credentials in
files, no SQL built from strings, landing paths confined, models loaded with trusted types only."""

import ast
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ["assets", "resources", "pipelines", "served_model", "bench"]


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout: every file under the repository
        return [p for p in REPO.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts]
    return [REPO / line for line in out.stdout.splitlines()]


def test_every_server_binds_to_loopback_by_default():
    makefile = (REPO / "Makefile").read_text()
    for server in ("dagster dev", "flights-mlflow-ui", "flights-serve"):
        line = next(text for text in makefile.splitlines() if server in text)
        assert "0.0.0.0" not in line
        if server == "dagster dev":
            assert "-h 127.0.0.1" in line, line
    from pipelines.commands.mlflow_ui import ui_command
    from pipelines.serving.server import arguments, serve_command
    from resources.registry import ModelRegistry

    default = arguments([])
    assert default.host == "127.0.0.1"
    cmd, _ = serve_command(ModelRegistry(tracking_uri="sqlite:///x.db"), default.host, default.port)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    cmd, env = ui_command("127.0.0.1", 5000)
    assert cmd[cmd.index("-h") + 1] == "127.0.0.1" and env["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_the_mlflow_ui_gets_its_store_password_through_the_environment_not_its_command_line(monkeypatch):
    """Every local user reads command lines (ps, /proc/<pid>/cmdline): a PostgreSQL store's URI,
    password and all, goes to `mlflow ui` as MLFLOW_BACKEND_STORE_URI, which it reads itself."""
    from pipelines.commands.mlflow_ui import ui_command

    store = "postgresql+psycopg2://pipeline:s3cret-pw-in-uri@127.0.0.1:9/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    cmd, env = ui_command("127.0.0.1", 5000)
    assert not any("s3cret-pw-in-uri" in arg for arg in cmd), cmd
    assert env["MLFLOW_BACKEND_STORE_URI"] == store


CREDENTIAL_IN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^@\s'\"$]+@", re.I)


def test_no_credentials_in_repository_files():
    offenders = []
    for path in tracked_files():
        if "tests" in path.relative_to(REPO).parts or path.suffix in {".lock", ".png"}:
            continue  # tests hold deliberately fake ones (an unreachable server's URL)
        try:
            content = path.read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in CREDENTIAL_IN_URL.finditer(content)]
        offenders += [f"{path.relative_to(REPO)}: password literal" for m in
                      re.finditer(r"^\s*password\s*:\s*[^\s{]+", content, re.M) if "env" not in m.group(0)]
    assert offenders == []


def _sql_calls_built_from_strings(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            owner = getattr(getattr(node.func, "value", None), "id", "")
            if owner == "MetadataValue":
                continue  # MetadataValue.text(...) is UI text, not SQL
            if name in {"text", "execute", "exec_driver_sql", "read_sql", "read_sql_query"}:
                first = node.args[0]
                built = isinstance(first, ast.JoinedStr) or isinstance(first, ast.BinOp) or (
                    isinstance(first, ast.Call) and getattr(first.func, "attr", "") == "format")
                if built:
                    lines.append(node.lineno)
    return lines


def test_no_sql_is_built_by_string_formatting_in_product_code():
    found = {}
    for folder in PRODUCT:
        for path in (REPO / folder).rglob("*.py"):
            lines = _sql_calls_built_from_strings(ast.parse(path.read_text()))
            if lines:
                found[str(path.relative_to(REPO))] = lines
    assert found == {}


def test_the_checker_catches_formatted_sql():
    tree = ast.parse('conn.execute(text(f"SELECT * FROM t WHERE d = \'{day}\'"))\nconn.execute(text("SELECT 1"))')
    assert _sql_calls_built_from_strings(tree) == [1]


@pytest.mark.parametrize("key", ["../../etc/passwd", "2013-01-01/../../x", "2013-1-1", "", "2013-01-01.csv"])
def test_a_partition_key_cannot_name_a_file_outside_the_landing_folder(tmp_path, key):
    from resources.schemas import FLIGHTS
    from resources.source import FlightSource

    with pytest.raises(ValueError, match="is not a day"):
        FlightSource(mode="landing", landing_dir=str(tmp_path)).load(FLIGHTS, key)


def test_models_are_loaded_only_with_the_reviewed_trusted_types():
    from served_model.files import SKOPS_TRUSTED_TYPES

    source = (REPO / "served_model" / "files.py").read_text()
    assert "serialization_format\") != \"skops\"" in source and "refusing to load" in source
    # the reviewed list: the trees, and the calibration wrapped around the classifier (arrays and numbers)
    assert SKOPS_TRUSTED_TYPES == ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                                   "sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration"]
    for folder in PRODUCT:
        for path in (REPO / folder).rglob("*.py"):
            text_ = path.read_text()
            assert "pickle.load" not in text_ and "joblib.load" not in text_, path
