"""project.yaml: reading it (yamlsource), its schema (schema, model), checks against each app's
Kconfig (kconfig_checks), the README reference (reference), hosts, and `init`'s adoption of an
existing app (adopt). May import: idf and the shared modules (errors, paths, files, process).
"""
