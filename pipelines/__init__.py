"""Dagster definitions: jobs, schedules and sensors of the flight-delay lifecycle."""
