"""The deployment files agree with each other and keep secrets out of what Docker and Kubernetes
show: the compose profile (deploy/team/compose.yaml, tested running by tests/team) and the
Kubernetes files (deploy/kubernetes, described, not run here)."""

from __future__ import annotations

import re

import yaml

from tests.support import REPO

# the variables that hold a credential (alone or inside a URL): only ever in /run/secrets files
# (compose) or Secrets (Kubernetes), never in a container's environment
SECRET_VARIABLES = {"DAGSTER_PG_URL", "WAREHOUSE_URL", "MLFLOW_TRACKING_PASSWORD", "FLIGHTS_EVIDENTLY_SECRET",
                    "FLIGHTS_CELERY_BROKER", "FLIGHTS_CELERY_BACKEND", "FLIGHTS_POSTGRES_URL", "MLFLOW_BACKEND_STORE_URI",
                    "MLFLOW_ADMIN_PASSWORD", "EVIDENTLY_SECRET", "POSTGRES_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"}
STATELESS = ("code", "daemon", "webserver", "webserver-read-only", "worker-1", "worker-2", "serving", "proxy")


def _compose() -> dict:
    return yaml.safe_load((REPO / "deploy/team/compose.yaml").read_text())


def test_no_container_of_the_compose_profile_gets_a_secret_through_its_environment_or_its_command():
    services = _compose()["services"]
    for name, service in services.items():
        environment = service.get("environment") or {}
        assert not SECRET_VARIABLES & set(environment), (name, SECRET_VARIABLES & set(environment))
        # a path to a mounted secret (POSTGRES_PASSWORD_FILE) is fine; a value naming a password is not
        assert not any(re.search(r"password|secret", str(v), re.I) for k, v in environment.items() if not k.endswith("_FILE")), name
        assert not any(re.search(r"password|requirepass", part, re.I) for part in service.get("command") or []), name
    # every secret the services mount is a file the team script writes into the secrets folder
    files = {s["file"].rsplit("/", 1)[1] for s in _compose()["secrets"].values()}
    script = (REPO / "deploy/team/team.sh").read_text()
    assert all(f"secret_file {name} " in script for name in files), files


def test_the_code_worker_and_scoring_containers_have_no_volume_and_each_volume_one_service():
    services = _compose()["services"]
    for name in STATELESS:
        assert not services[name].get("volumes"), name
    owners: dict[str, list[str]] = {}
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if not source.startswith("."):  # a named volume, not a read-only file of the repository
                owners.setdefault(source, []).append(name)
    assert set(owners) == set(_compose()["volumes"]) and all(len(v) == 1 for v in owners.values()), owners


def test_only_the_edge_services_publish_ports_and_only_on_loopback():
    services = _compose()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"postgres", "redis", "mlflow", "evidently", "proxy", "webserver-read-only", "serving"}
    assert all(port.startswith("127.0.0.1:") for s in services.values() for port in s.get("ports") or [])
    assert "ports" not in services["webserver"] and services["webserver"]["networks"] == ["backplane"]
    assert _compose()["networks"]["backplane"]["internal"] is True


def test_the_kubernetes_files_run_the_same_images_and_read_the_same_secret_keys():
    values = yaml.safe_load((REPO / "deploy/kubernetes/dagster-values.yaml").read_text())
    manifests = list(yaml.safe_load_all((REPO / "deploy/kubernetes/services.yaml").read_text()))
    secrets = {d["metadata"]["name"]: d["stringData"] for d in
               yaml.safe_load_all((REPO / "deploy/kubernetes/secrets.example.yaml").read_text())}
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    images = {values["dagsterWebserver"]["image"]["repository"], values["dagsterDaemon"]["image"]["repository"],
              deployment["image"]["repository"]}
    images |= {c["image"].split(":")[0] for m in manifests if m["kind"] == "Deployment" for c in m["spec"]["template"]["spec"]["containers"]}
    assert {image.rsplit("/", 1)[1] for image in images} == {"flights-code", "flights-serving"}
    assert values["runLauncher"]["type"] == "K8sRunLauncher" and values["postgresql"]["enabled"] is False
    assert deployment["dagsterApiGrpcArgs"][:2] == ["-m", "pipelines.definitions"]
    assert {s["name"] for s in deployment["envSecrets"]} <= set(secrets)
    assert not SECRET_VARIABLES & {e["name"] for e in deployment["env"]}
    # the Secret of the code location and the runs holds the keys the compose profile's pipeline.env does (no broker: no Celery)
    script = (REPO / "deploy/team/team.sh").read_text()
    pipeline_env = set(re.findall(r'"([A-Z_]+)=\$', script.split("secret_file pipeline.env", 1)[1].split("secret_file serving.env")[0]))
    pipeline_env |= {"MLFLOW_TRACKING_USERNAME"}
    assert set(secrets["flights-pipeline"]) == pipeline_env - {"FLIGHTS_CELERY_BROKER", "FLIGHTS_CELERY_BACKEND"}
    # the limits of the run queue are the instance's of the compose profile
    team = yaml.safe_load((REPO / "deploy/team/dagster.yaml").read_text())
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["tagConcurrencyLimits"] == team["concurrency"]["runs"]["tag_concurrency_limits"]
    assert values["dagsterDaemon"]["runRetries"]["maxRetries"] == team["run_retries"]["max_retries"]
