"""From project.yaml to verified images: the rendered files (render), the staged sources
(staging), the build plan (build_plan) and idf.py builds and their checks (build), the typed app
summary they hand over (outputs), the manifest and reproducibility (repro).
May import: config, idf, tls and the shared modules.
"""
