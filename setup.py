"""Only what pyproject.toml cannot declare: esp_ota_doit.pth at the top of site-packages, in
wheels and editable installs alike. It guards doit's command line against empty arguments,
which doit 0.37 trips over before it loads dodo.py (see tasks/argv_guard.py)."""

from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "esp_ota_doit.pth"
SOURCE = Path(__file__).parent / "tasks" / PTH


class BuildPyWithPth(build_py):  # type: ignore[misc]
    """A wheel: the .pth goes next to the package."""

    def run(self) -> None:
        super().run()
        self.copy_file(str(SOURCE), str(Path(self.build_lib) / PTH))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH)]


class _WithPth:
    """An editable install's strategy (setuptools writes its own finder .pth the same way),
    plus ours: sorted after __editable__.*.pth, so the package is importable by then."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, wheel: Any, files: list[str], mapping: dict[str, str]) -> None:
        self._inner(wheel, files, mapping)
        wheel.writestr(PTH, SOURCE.read_bytes())

    def __enter__(self) -> "_WithPth":
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)


class EditableWithPth(editable_wheel):  # type: ignore[misc]
    def _select_strategy(self, *args: Any, **kwargs: Any) -> _WithPth:
        return _WithPth(super()._select_strategy(*args, **kwargs))


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWithPth})
