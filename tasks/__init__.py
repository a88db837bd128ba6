"""ESP-IDF OTA orchestration on doit: one project.yaml, incremental tasks."""

# Goes into every config_changed payload, so an upgrade of this package re-renders its outputs.
__version__ = "0.1.0"
