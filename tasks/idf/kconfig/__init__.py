"""ESP-IDF's Kconfig: kconfgen run as ESP-IDF's build runs it (`kconfgen`), the app's
Kconfig symbols and what project.yaml's values mean for them (`symbols`), sdkconfig text
(`sdkconfig`), and an app's own Kconfig facts: its string options (`app_options`) and its
layered configuration (`app_config`). May import: the shared modules and idf only.
"""
