"""The string options an app's own Kconfig files declare, read as kconfgen's parser reads them:
checked against kconfiglib (esp-idf-kconfig) on every example of each release in ../shared."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path

import kconfiglib.core
import pytest
from esp_ota_doit.idf.kconfig.app_options import kconfig_strings

from tests.conftest import IDF_TAGS


def _kconfiglib_strings(file: Path, work: Path) -> dict[str, tuple[str, str, int]]:
    """{CONFIG_X: (prompt, first default as text, line)} of the prompted string options."""
    top = work / "Kconfig"
    top.write_text(f'mainmenu "app"\nsource "{file}"\n', encoding="utf-8")
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        parsed = kconfiglib.core.Kconfig(str(top), warn=False)
    found: dict[str, tuple[str, str, int]] = {}
    for symbol in parsed.unique_defined_syms:
        prompted = [node for node in symbol.nodes if node.prompt]
        if symbol.orig_type != kconfiglib.core.STRING or not prompted:
            continue
        first = symbol.orig_defaults[0][0] if symbol.orig_defaults else None
        default = first.name if first is not None and first.is_constant else ""
        found[f"CONFIG_{symbol.name}"] = (prompted[0].prompt[0], default, symbol.nodes[0].linenr)
    return found


@pytest.mark.parametrize("tag", [IDF_TAGS[0], IDF_TAGS[-1]])
def test_kconfig_strings__as_kconfiglib_reads_every_example(
    tag: str, idf_tree: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = idf_tree(tag)
    monkeypatch.setenv("IDF_PATH", str(root))
    monkeypatch.setenv("IDF_TARGET", "esp32c3")
    files = sorted((root / "examples").rglob("Kconfig.projbuild"))
    assert len(files) > 150, files
    options = 0
    for file in files:
        ours = {
            option.name: (option.prompt, option.default, option.line)
            for option in kconfig_strings(file.read_text(encoding="utf-8"), file)
        }
        assert ours == _kconfiglib_strings(file, tmp_path), file
        options += len(ours)
    assert options > 100


def test_kconfig_strings__type_prompt_and_default_in_any_order() -> None:
    text = (
        'menu "x"\n    config A_URL\n        string "url"\n'
        '        default "https://h/p" if B\n        default "https://other"\n'
        '    config N\n        int "n"\n        default 3\n'
        '    config HOST\n        depends on B\n        default "a\\"b"\n        string "Host"\n'
        '    config LABEL\n        string\n        prompt "Label"\n'
        '        help\n            default "not a default"\n'
        '    config HIDDEN\n        string\n        default "x"\nendmenu\n'
    )
    found = kconfig_strings(text, Path("Kconfig.projbuild"))
    assert [(o.name, o.prompt, o.default, o.line) for o in found] == [
        ("CONFIG_A_URL", "url", "https://h/p", 2),
        ("CONFIG_HOST", "Host", 'a"b', 9),
        ("CONFIG_LABEL", "Label", "", 13),
    ]
