"""The Dagster side of the doors to the outside: thin `ConfigurableResource`s whose fields are
what a run may configure (the Launchpad shows them) and which hand each step the plain client
(`create_resource`). Steps annotate the client, `warehouse: ResourceParam[Warehouse]`; tests
may pass a client itself as the resource.

The only module of resources/ that imports Dagster besides the resources not yet split
(source.py, data_quality.py, monitoring_workspace.py)."""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field

from resources.registry import ModelRegistry
from resources.warehouse import Warehouse


class WarehouseResource(ConfigurableResource):
    """The SQL warehouse (resources/warehouse.py)."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the warehouse; unset: the setting WAREHOUSE_URL (or the profile's "
        "default), read when a step runs, so that no credential is part of the definitions.",
    )

    def create_resource(self, context: InitResourceContext) -> Warehouse:
        return Warehouse(url=self.url)


class ModelRegistryResource(ConfigurableResource):
    """The MLflow tracking store and model registry (resources/registry/)."""

    tracking_uri: str | None = Field(default=None, description="MLflow tracking URI; unset: the setting "
                                     "MLFLOW_TRACKING_URI (or the profile's default), read when a step runs.")
    artifact_root: str | None = Field(default=None, description="Where a new experiment keeps its artifacts; "
                                      "unset: the setting MLFLOW_ARTIFACT_ROOT.")

    def create_resource(self, context: InitResourceContext) -> ModelRegistry:
        return ModelRegistry(tracking_uri=self.tracking_uri, artifact_root=self.artifact_root)
