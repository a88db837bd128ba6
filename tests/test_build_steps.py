"""build:<app>'s steps (config, idf, checks, sign, merge, the summary) and doit's one up-to-date
mechanism: each change runs the steps that read it and no other, and a target is current only
while its bytes are the ones its step recorded (never by size). Against the idf.py stand-in,
whose calls tests/fakes/idf.py logs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain
from esp_ota_doit import graph
from esp_ota_doit.idf import signing

from tests.doitrun import edit, executed, run, run_with_output
from tests.test_build import idf_calls

STEPS = ("config", "idf", "checks", "merge")


@pytest.fixture(scope="module")
def keys() -> list[bytes]:
    """Two RSA-3072 keys (Secure Boot V2 on esp32), as PEM."""
    return [
        rsa.generate_private_key(public_exponent=65537, key_size=3072).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for _ in range(2)
    ]


@pytest.fixture
def signed(project_dir: Path, idf: Path, keys: list[bytes]) -> Path:
    """The example with ota.sign, built once with the first key."""
    edit(project_dir, "  image: hello_world\n", "  image: hello_world\n  sign: rsa3072\n")
    key = project_dir / "keys" / "signing_key.pem"
    key.parent.mkdir(mode=0o700)
    key.write_bytes(keys[0])
    key.chmod(0o600)
    code, _, text = run_with_output(project_dir, "build")
    assert code == 0, text
    return project_dir


def _summary_sha256(project: Path, role: str = "app") -> str:
    summary = json.loads((project / "build/hello_world/app.json").read_text())
    return next(str(image["sha256"]) for image in summary["images"] if image["role"] == role)


def test_list__the_steps_show_with_all_only(
    project_dir: Path, idf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert DoitMain(ModuleTaskLoader(graph)).run(["list"]) == 0
    assert ":idf" not in capsys.readouterr().out
    assert DoitMain(ModuleTaskLoader(graph)).run(["list", "--all"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    for app in ("factory", "hello_world"):
        assert {f"build:{app}", *(f"build:{app}:{step}" for step in STEPS)} <= set(names)
    assert "build:hello_world:sign" not in names  # no ota.sign: no step


def _public(private_pem: bytes) -> bytes:
    public = serialization.load_pem_private_key(private_pem, None).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("how", ["signed with another key", "one byte flipped"])
def test_signed__a_replaced_image_of_the_same_size_is_signed_again(
    signed: Path, idf: Path, keys: list[bytes], how: str
) -> None:
    image = signed / "build/hello_world/hello_world-signed.bin"
    ours = image.read_bytes()
    if how == "signed with another key":
        before = len(idf_calls(idf))
        (signed / "keys" / "signing_key.pem").write_bytes(keys[1])
        code, results = run(signed, "build")
        assert code == 0
        ran = executed(results)  # a new key signs every app again, without idf.py
        for app in ("factory", "hello_world"):
            assert {f"build:{app}:sign", f"build:{app}:merge", f"build:{app}"} <= ran
            assert f"build:{app}:idf" not in ran and f"build:{app}:checks" not in ran
        assert len(idf_calls(idf)) == before
        other = image.read_bytes()
        signing.verify(other, _public(keys[1]), image.name)
        (signed / "keys" / "signing_key.pem").write_bytes(keys[0])
        assert run(signed, "build")[0] == 0
        ours = image.read_bytes()
    else:
        other = bytearray(ours)
        other[len(other) // 2] ^= 0x01
    assert len(other) == len(ours) and other != ours
    image.write_bytes(bytes(other))
    before = len(idf_calls(idf))
    code, results = run(signed, "build")
    assert code == 0
    assert "build:hello_world:sign" in executed(results)
    assert "build:hello_world:idf" not in executed(results)
    assert len(idf_calls(idf)) == before
    signing.verify(image.read_bytes(), _public(keys[0]), image.name)
    assert _summary_sha256(signed) == _sha256(image.read_bytes())
    assert run(signed, "build")[1]["build:hello_world:sign"] == "up-to-date"


def test_idf__a_replaced_image_is_made_again(built: Path, idf: Path) -> None:
    image = built / "build/hello_world/hello_world.bin"
    made = image.read_bytes()
    flipped = bytearray(made)
    flipped[len(flipped) // 2] ^= 0x01
    image.write_bytes(bytes(flipped))
    code, results, text = run_with_output(built, "build")
    assert code == 0
    assert "build:hello_world:idf" in executed(results)
    assert f"app 'hello_world': {image} is not the image idf.py made; making it again" in text
    assert image.read_bytes() == made
    assert _summary_sha256(built) == _sha256(made)


def test_idf__a_changed_sdkconfig_builds_again_but_keeps_it(built: Path, idf: Path) -> None:
    # What idf.py menuconfig does: the build takes it, and keeps it until the defaults change.
    sdkconfig = built / "build/hello_world/sdkconfig"
    sdkconfig.write_text(sdkconfig.read_text() + "CONFIG_LOG_DEFAULT_LEVEL_DEBUG=y\n")
    _, results = run(built, "build")
    assert "build:hello_world:idf" in executed(results)
    assert "build:hello_world:config" not in executed(results)
    config = json.loads((built / "build/hello_world/config/sdkconfig.json").read_text())
    assert config["LOG_DEFAULT_LEVEL_DEBUG"] is True


def test_summary__an_edited_summary_is_written_again(built: Path, idf: Path) -> None:
    summary = built / "build/hello_world/app.json"
    made = summary.read_text()
    summary.write_text(made.replace('"schema": 1', '"schema": 0'))
    _, results = run(built, "build")
    assert executed(results) == {"build:hello_world"}  # no image changed: nothing else runs
    assert summary.read_text() == made


def test_idf__an_edit_in_the_staged_copy_is_undone(built: Path, idf: Path) -> None:
    staged = built / "build/src/hello_world/main/hello_world_main.c"
    original = staged.read_bytes()
    staged.write_text("void app_main(void) { /* edited where it is built */ }\n")
    _, results = run(built, "build")
    assert "build:hello_world:idf" in executed(results)
    assert staged.read_bytes() == original
    assert run(built, "build")[1]["build:hello_world:idf"] == "up-to-date"


def test_config__the_apps_own_defaults_file_makes_a_new_sdkconfig(built: Path, idf: Path) -> None:
    # ESP-IDF keeps an existing sdkconfig's values: without a new one the edit would be ignored.
    own = idf / "examples/system/ota/simple_ota_example/sdkconfig.defaults"
    own.write_text(own.read_text() + "CONFIG_LOG_DEFAULT_LEVEL_DEBUG=y\n")
    _, results = run(built, "build")
    assert {"build:factory:config", "build:factory:idf"} <= executed(results)
    assert not any(name.startswith("build:hello_world") for name in executed(results))
    config = json.loads((built / "build/factory/config/sdkconfig.json").read_text())
    assert config["LOG_DEFAULT_LEVEL_DEBUG"] is True
