"""From project.yaml to verified images: the rendered files (render), the staged sources
(staging), idf.py builds and their checks (build), the manifest and reproducibility (repro).
May import: config, idf and the shared modules.
"""
