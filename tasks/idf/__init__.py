"""ESP-IDF's own concepts, as data and pure functions over ESP-IDF's formats: chips and releases,
partition tables, otadata, sdkconfig, Kconfig and kconfgen, app images, signatures, idf.py and an
app project's files. Knows nothing of project.yaml. May import: the shared modules only.
"""
