"""Test-only: make the modules named in EXTRAS_ONLY_BLOCK (comma-separated) unimportable, in this
process and in every Python child that inherits the variable.

Put on PYTHONPATH by tests/test_readme.py, so the README's main job runs with only what
`pip install -e '.[rehearse]'` installs; never shipped. A None entry in sys.modules makes
`import` raise ModuleNotFoundError and `importlib.util.find_spec` (and `python -m`) find nothing.
"""

import os
import sys

for _name in filter(None, os.environ.get("EXTRAS_ONLY_BLOCK", "").split(",")):
    sys.modules.setdefault(_name, None)  # type: ignore[assignment]
