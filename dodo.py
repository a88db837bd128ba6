"""doit entry point: the task graph lives in tasks/graph.py (run `doit list`)."""

from tasks.graph import *  # noqa: F403 - graph.__all__ is the task creators and DOIT_CONFIG
