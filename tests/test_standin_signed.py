"""The stand-in builds signed apps as ESP-IDF v5.3.2's esptool_py/project_include.cmake does:
elf2image pads the app (--secure-pad-v2, or --secure-pad for Secure Boot V1's ECDSA) unless
SECURE_BOOT_ALLOW_SHORT_APP_PARTITION; a build that signs writes <name>-unsigned.bin and the
signed <name>.bin, which flasher_args.json names; an RSA-signed app's flash arguments keep the
image's flash size."""

from __future__ import annotations

import io
import json
from pathlib import Path

import espsecure
import pytest

from tests.test_standin import SIMPLE_OTA, Idf, _project, main


@pytest.fixture
def idf(capsys: pytest.CaptureFixture[str]) -> Idf:
    """The stand-in in-process: idf(project, *args) -> (exit code, stdout, stderr)."""

    def run(project: Path, *args: str) -> tuple[int, str, str]:
        code = main(["-C", str(project), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


_SIGNED = (
    "CONFIG_SECURE_SIGNED_APPS_NO_SECURE_BOOT=y\n"
    "CONFIG_SECURE_SIGNED_APPS_{scheme}=y\n"
    "CONFIG_SECURE_BOOT_BUILD_SIGNED_BINARIES={build_signs}\n"
    'CONFIG_SECURE_BOOT_SIGNING_KEY="keys/app.pem"\n'
)
_PAD = 0x10000  # the signed content ends on a 64 KiB boundary (the MMU page), then the sector
_SECTOR = 0x1000


def _app(
    tmp_path: Path, options: str, *, key_scheme: str = "rsa3072", target: str = "esp32c3"
) -> Path:
    files = dict(SIMPLE_OTA)
    files["sdkconfig.defaults"] += f'CONFIG_IDF_TARGET="{target}"\n' + options
    root = _project(tmp_path / "signed_app", files)
    (root / "keys").mkdir()
    (root / "keys" / "app.pem").write_bytes(_key(key_scheme))
    return root


def _key(scheme: str) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=3072)
        if scheme == "rsa3072"
        else ec.generate_private_key(ec.SECP256R1())
    )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _verifies(image: bytes, key: Path) -> bool:
    from esptool.util import FatalError

    try:
        espsecure.verify_signature(
            "2", False, None, io.BytesIO(key.read_bytes()), io.BytesIO(image)
        )
    except FatalError:
        return False
    return True


@pytest.mark.parametrize("scheme", ["RSA_SCHEME", "ECDSA_V2_SCHEME"])
def test_standin__build_that_signs_writes_unsigned_and_signed_and_flashes_the_signed(
    idf: Idf, tmp_path: Path, scheme: str
) -> None:
    key_scheme, target = (
        ("rsa3072", "esp32c3") if scheme == "RSA_SCHEME" else ("ecdsa256", "esp32c6")
    )
    options = _SIGNED.format(scheme=scheme, build_signs="y")
    root = _app(tmp_path, options, key_scheme=key_scheme, target=target)
    code, out, err = idf(root, "build")
    assert code == 0, out + err
    build = root / "build"
    unsigned = (build / "simple_ota-unsigned.bin").read_bytes()
    signed = (build / "simple_ota.bin").read_bytes()
    assert len(unsigned) % _PAD == 0  # --secure-pad-v2
    assert signed[: len(unsigned)] == unsigned and len(signed) == len(unsigned) + _SECTOR
    assert _verifies(signed, root / "keys" / "app.pem")
    assert (
        f"Generated signed binary image {build}/simple_ota.bin from {build}/simple_ota-unsigned.bin"
        in out
    )
    flasher = json.loads((build / "flasher_args.json").read_text())
    assert flasher["app"]["file"] == "simple_ota.bin"
    size = "keep" if scheme == "RSA_SCHEME" else "4MB"
    assert flasher["flash_settings"]["flash_size"] == size
    assert flasher["write_flash_args"][3] == size
    assert f"--flash_size {size}" in (build / "flash_app_args").read_text()


def test_standin__signed_app_built_unsigned_is_padded_and_says_to_sign(
    idf: Idf, tmp_path: Path
) -> None:
    root = _app(tmp_path, _SIGNED.format(scheme="RSA_SCHEME", build_signs="n"))
    code, out, err = idf(root, "build")
    assert code == 0, out + err
    image = (root / "build" / "simple_ota.bin").read_bytes()
    assert len(image) % _PAD == 0
    assert not (root / "build" / "simple_ota-unsigned.bin").exists()
    assert image[-_SECTOR] != 0xE7  # no Secure Boot V2 signature block
    assert "App built but not signed. Sign app before flashing" in out


def test_standin__short_app_partition_allowed_means_no_padding(idf: Idf, tmp_path: Path) -> None:
    options = _SIGNED.format(scheme="RSA_SCHEME", build_signs="n")
    root = _app(tmp_path, options + "CONFIG_SECURE_BOOT_ALLOW_SHORT_APP_PARTITION=y\n")
    code, out, err = idf(root, "build")
    assert code == 0, out + err
    image = (root / "build" / "simple_ota.bin").read_bytes()
    assert len(image) % _PAD != 0 and len(image) % 16 == 0


def test_standin__unsigned_app_is_not_padded(idf: Idf, tmp_path: Path) -> None:
    root = _app(tmp_path, "")
    code, out, err = idf(root, "build")
    assert code == 0, out + err
    assert len((root / "build" / "simple_ota.bin").read_bytes()) % _PAD != 0
    assert "Sign app" not in out


def test_standin__missing_signing_key_fails_in_esp_idfs_words(idf: Idf, tmp_path: Path) -> None:
    root = _app(tmp_path, _SIGNED.format(scheme="RSA_SCHEME", build_signs="y"))
    (root / "keys" / "app.pem").unlink()
    code, _, err = idf(root, "build")
    assert code == 2
    assert "Secure Boot Signing Key keys/app.pem does not exist. Generate using:" in err
    assert "\tespsecure.py generate_signing_key --version 2 --scheme rsa3072 keys/app.pem" in err


_FACTORY_TABLE = "nvs, data, nvs, 0x9000, 0x6000\nphy_init, data, phy, 0xf000, 0x1000\n"
_FACTORY_TABLE += "factory, app, factory, 0x10000, 1M\nota_0, app, ota_0, , 1M\n"
_FACTORY_TABLE += "ota_1, app, ota_1, , 1M\notadata, data, ota, , 0x2000\n"


def test_standin__anti_rollback_beside_a_factory_app_fails_as_esp_idf_does(
    idf: Idf, tmp_path: Path
) -> None:
    options = "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y\nCONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y\n"
    options += 'CONFIG_PARTITION_TABLE_CUSTOM=y\nCONFIG_PARTITION_TABLE_CUSTOM_FILENAME="t.csv"\n'
    root = _app(tmp_path, options)
    (root / "t.csv").write_text(_FACTORY_TABLE)
    code, out, err = idf(root, "build")
    assert code == 2
    assert "FAILED: esp-idf/esptool_py/CMakeFiles/check_table_contents" in out
    assert (
        "ERROR: Anti-rollback option is enabled. Partition table should consist of two ota app "
        "without factory or test partitions." in err.splitlines()
    )
    assert not (root / "build" / "simple_ota.bin").exists()


def test_standin__flash_encryption_development_flashes_every_image_encrypted(
    idf: Idf, tmp_path: Path
) -> None:
    """As ESP-IDF v5.3.2 writes flasher_args.json for simple_ota_example's flash_enc_wifi
    variant on esp32c3 (checked against the kit's build)."""
    options = (
        "CONFIG_SECURE_FLASH_ENC_ENABLED=y\nCONFIG_SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT=y\n"
    )
    root = _app(tmp_path, options)
    code, out, err = idf(root, "build")
    assert code == 0, out + err
    flasher = json.loads((root / "build" / "flasher_args.json").read_text())
    roles = ("bootloader", "app", "partition-table", "otadata")
    assert [flasher[role]["encrypted"] for role in roles] == ["true"] * 4
    assert flasher["extra_esptool_args"]["after"] == "no_reset"
    assert list(flasher["flash_files"]) == ["0x0", "0x10000", "0x8000", "0xd000"]


def test_standin__plain_build_flashes_plain_images(idf: Idf, tmp_path: Path) -> None:
    root = _app(tmp_path, "")
    code, out, err = idf(root, "build")
    assert code == 0, out + err
    flasher = json.loads((root / "build" / "flasher_args.json").read_text())
    assert {flasher[role]["encrypted"] for role in ("bootloader", "app")} == {"false"}
    assert flasher["extra_esptool_args"]["after"] == "hard_reset"
