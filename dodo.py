"""doit entry point: the task graph lives in esp_ota_doit.graph (source: tasks/graph.py)."""

from esp_ota_doit.graph import *  # noqa: F403 - graph.__all__ is the task creators and DOIT_CONFIG
