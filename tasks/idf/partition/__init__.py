"""ESP-IDF's partition tables as gen_esp32part.py of v5.3.2 to v6.0.2 makes them: the
table model and each release's rules as data (`model`), layout, checks and presets
(`rules`), the CSV and binary formats (`formats`). May import: the shared modules and
idf only.
"""
