"""Dagster resources (ConfigurableResource) and settings shared by the assets."""
