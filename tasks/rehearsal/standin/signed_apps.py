"""The idf.py stand-in's signed apps, as components/esptool_py/project_include.cmake of ESP-IDF
v5.3.2 builds them: elf2image's padding, the signing step where the build signs, and the lines
the build prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .standin_config import Config, IdfPyError, Value

__all__ = ["app_steps", "secure_pad"]

Step = tuple[str, Mapping[str, bytes | str], tuple[str, ...]]


def _signing_version(values: Mapping[str, Value]) -> str:
    """espsecure's --version for the app's signing scheme: 1 (ECDSA, Secure Boot V1), 2 (RSA or
    ECDSA V2), or empty when apps are not signed."""
    if values.get("SECURE_SIGNED_APPS_ECDSA_SCHEME") is True:
        return "1"
    schemes = ("SECURE_SIGNED_APPS_RSA_SCHEME", "SECURE_SIGNED_APPS_ECDSA_V2_SCHEME")
    return "2" if any(values.get(scheme) is True for scheme in schemes) else ""


def secure_pad(config: Config) -> str:
    """elf2image pads a signed app so its signature sector lands where the bootloader maps it,
    unless SECURE_BOOT_ALLOW_SHORT_APP_PARTITION."""
    if config.values.get("SECURE_BOOT_ALLOW_SHORT_APP_PARTITION") is True:
        return ""
    return _signing_version(config.values)


def _signing_key(config: Config, project: Path) -> Path:
    """CONFIG_SECURE_BOOT_SIGNING_KEY, relative to the project; ESP-IDF's error where absent."""
    written = str(config.values["SECURE_BOOT_SIGNING_KEY"])
    key = project / written
    if key.is_file():
        return key
    version = _signing_version(config.values)
    scheme = ""
    if version == "2":
        ecdsa = config.values.get("SECURE_SIGNED_APPS_ECDSA_V2_SCHEME") is True
        bits = "192" if config.values.get("SECURE_BOOT_ECDSA_KEY_LEN_192_BITS") is True else "256"
        scheme = f" --scheme {f'ecdsa{bits}' if ecdsa else 'rsa3072'}"
    lines = [
        f"Secure Boot Signing Key {written} does not exist. Generate using:",
        f"\tespsecure.py generate_signing_key --version {version}{scheme} {written}",
    ]
    raise IdfPyError(lines, tool="ninja", failed="gen_secure_boot_signing_key")


def _signed(key: Path, version: str, image: bytes) -> bytes:
    """espsecure sign_data, as the build's signing step runs it."""
    import tempfile

    import espsecure

    with tempfile.TemporaryDirectory(prefix="standin-sign-") as scratch:
        unsigned, signed = Path(scratch) / "unsigned.bin", Path(scratch) / "signed.bin"
        unsigned.write_bytes(image)
        with key.open("rb") as keyfile, unsigned.open("rb") as data:
            espsecure.sign_data(
                version, [keyfile], str(signed), False, False, None, None, None, data
            )
        return signed.read_bytes()


def app_steps(
    config: Config, project: Path, build: Path, image: bytes, size_lines: Sequence[str]
) -> list[Step]:
    """elf2image's step, then the signing step where the build signs (the unsigned image is
    <name>-unsigned.bin and <name>.bin the signed one, which flasher_args.json names)."""
    name, version = config.name, _signing_version(config.values)
    if not version or config.values.get("SECURE_BOOT_BUILD_SIGNED_BINARIES") is not True:
        lines = [f"Generated {build / name}.bin", *size_lines]
        if version:
            lines += [
                "App built but not signed. Sign app before flashing",
                "\tespsecure.py sign_data --keyfile KEYFILE "
                f"--version {version} {build / name}.bin",
            ]
        return [
            ("Generating binary image from built executable", {f"{name}.bin": image}, tuple(lines))
        ]
    key = _signing_key(config, project)
    signed = _signed(key, version, image)
    unsigned = f"{name}-unsigned.bin"
    done = f"Generated signed binary image {build / name}.bin from {build / unsigned}"
    return [
        ("Generating binary image from built executable", {unsigned: image},
         (f"Generated {build / unsigned}", *size_lines)),
        ("Generating signed binary image", {f"{name}.bin": signed}, (done,)),
    ]  # fmt: skip
