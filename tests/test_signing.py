"""Signed images with the real espsecure (esptool 5.6), the project.yaml rules of ESP-IDF
v5.3.2's bootloader Kconfig, serve's refusals, and otadata's rollback states.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from esp_ota_doit.config import model
from esp_ota_doit.device import record
from esp_ota_doit.errors import ConfigError
from esp_ota_doit.firmware import defaults, signing_key
from esp_ota_doit.idf import otadata, signing
from esp_ota_doit.idf.partition import rules
from esp_ota_doit.serve import serving

from tests.test_model import errors, load
from tests.test_serve import BOARD, cached_image, make_site

EXAMPLE = (Path(__file__).parent.parent / "project.yaml").read_text()


def _with(text: str, ota_extra: str = "", app_extra: str = "") -> str:
    text = text.replace("  image: hello_world\n", f"  image: hello_world\n{ota_extra}")
    return text.replace("version: 1.0.1}", f"version: 1.0.1{app_extra}}}")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    made = {}
    for name in ("rsa3072", "ecdsa256", "other"):
        made[name] = root / name / "signing_key.pem"
        signing.new_key("rsa3072" if name == "other" else name, made[name])
    return made


# --- espsecure: sign-data / verify-signature --version 2 -------------------------------------


@pytest.mark.parametrize("scheme", ["rsa3072", "ecdsa256"])
def test_sign__verifies_with_the_key_and_its_public_half(
    keys: dict[str, Path], scheme: str, tmp_path: Path
) -> None:
    image = cached_image()
    signed = signing.sign(keys[scheme], image)
    # Secure Boot V2: the image padded to 4 KiB, then one 4 KiB signature sector.
    assert signed[: len(image)] == image
    assert len(signed) == -(-len(image) // 4096) * 4096 + 4096
    assert signed[-4096] == 0xE7  # signature block magic
    signing.verify(signed, keys[scheme].read_bytes(), "hello_world-signed.bin")
    public = signing.signed_public_key(signed)
    assert public is not None and public.startswith(b"-----BEGIN PUBLIC KEY-----")
    signing.verify(signed, public, "hello_world-signed.bin")
    # espsecure's own command line agrees.
    (tmp_path / "signed.bin").write_bytes(signed)
    (tmp_path / "public.pem").write_bytes(public)
    cli = [sys.executable, "-m", "espsecure", "verify-signature", "--version", "2", "--keyfile"]
    done = subprocess.run(
        [*cli, str(tmp_path / "public.pem"), str(tmp_path / "signed.bin")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verification successful" in done.stdout


@pytest.mark.parametrize("where", [100, -4096 + 900])  # in the image; in the signature
def test_sign__one_flipped_byte_does_not_verify(
    keys: dict[str, Path], where: int, tmp_path: Path
) -> None:
    flipped = bytearray(signing.sign(keys["rsa3072"], cached_image()))
    flipped[where] ^= 0x01
    with pytest.raises(signing.SignatureError) as caught:
        signing.verify(bytes(flipped), keys["rsa3072"].read_bytes(), "hello_world-signed.bin")
    assert str(caught.value).startswith("hello_world-signed.bin: signature does not verify")
    (tmp_path / "flipped.bin").write_bytes(flipped)
    cli = [sys.executable, "-m", "espsecure", "verify-signature", "--version", "2", "--keyfile"]
    done = subprocess.run(
        [*cli, str(keys["rsa3072"]), str(tmp_path / "flipped.bin")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0


def test_verify__another_key_and_no_signature(keys: dict[str, Path]) -> None:
    signed = signing.sign(keys["rsa3072"], cached_image())
    with pytest.raises(signing.SignatureError, match="does not verify with the key"):
        signing.verify(signed, keys["other"].read_bytes(), "x.bin")
    with pytest.raises(signing.SignatureError, match="the image is unsigned"):
        signing.verify(cached_image(), keys["rsa3072"].read_bytes(), "x.bin")


def test_check_update__trust_comes_from_the_running_app(keys: dict[str, Path]) -> None:
    running = signing.sign(keys["rsa3072"], cached_image())
    ok = signing.sign(keys["rsa3072"], cached_image(version="2.0.0"))
    signing.check_update(ok, running, "ota_0")
    other = signing.sign(keys["other"], cached_image(version="2.0.0"))
    with pytest.raises(signing.SignatureError, match="signed with a key the running app"):
        signing.check_update(other, running, "ota_0")
    with pytest.raises(signing.SignatureError, match="No signatures were found for the running"):
        signing.check_update(ok, cached_image(), "ota_0")


# --- the key: made once, 0600 in a 0700 folder, loss is fatal, rotation keeps the old one ------


def test_create_key__once_private_and_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = signing_key.SigningPlan(
        scheme="rsa3072", key=tmp_path / "keys" / "signing_key.pem", from_env=False
    )
    assert signing_key.create_key(plan).startswith("signing key created")
    assert "a lost signing key means no further OTA update" in capsys.readouterr().err
    assert plan.key.stat().st_mode & 0o777 == 0o600
    assert plan.key.parent.stat().st_mode & 0o777 == 0o700
    before = plan.key.read_bytes()
    assert signing_key.create_key(plan).startswith("signing key:")
    assert plan.key.read_bytes() == before
    mismatch = "is an rsa3072 key but ota.sign is ecdsa256"
    with pytest.raises(signing_key.SigningKeyError, match=mismatch):
        signing_key.create_key(dataclasses.replace(plan, scheme="ecdsa256"))
    signing_key.rotate(plan)
    assert "the old key is kept as" in capsys.readouterr().err
    old = list(plan.key.parent.glob("signing_key.pem.*.old"))
    assert len(old) == 1 and old[0].read_bytes() == before
    assert plan.key.read_bytes() != before


def test_plan__ota_signing_key_names_the_ci_key(tmp_path: Path) -> None:
    project = load(_with(EXAMPLE, "  sign: rsa3072\n"))
    assert signing_key.plan(load(EXAMPLE), {}, tmp_path) is None
    local = signing_key.plan(project, {}, tmp_path)
    assert local is not None and local.key == tmp_path / "signing_key.pem"
    ci = tmp_path / "ci.pem"
    ci.write_text("x")
    named = signing_key.plan(project, {"OTA_SIGNING_KEY": str(ci)}, tmp_path)
    assert named is not None and named.key == ci and named.from_env
    with pytest.raises(ConfigError, match=r"\$OTA_SIGNING_KEY names '/nope', which is not a file"):
        signing_key.plan(project, {"OTA_SIGNING_KEY": "/nope"}, tmp_path)


# --- project.yaml rules ---------------------------------------------------------------------


def test_load__without_the_new_keys_nothing_changes() -> None:
    project = load(EXAMPLE)
    assert project.ota is not None and project.ota.sign is None and not project.ota.rollback
    assert not project.anti_rollback
    for app in project.apps:
        options = defaults.plan(project, app, partitions_csv=Path("p.csv")).to_json()
        assert "SECURE" not in json.dumps(options) and "ROLLBACK" not in json.dumps(options)


@pytest.mark.parametrize(
    ("extra", "target", "line"),
    [
        (
            "  sign: ecdsa256\n",
            "esp32",
            "ota.sign: esp32 cannot verify ecdsa256 signatures "
            "(its Secure Boot V2 supports rsa3072 only); use ota.sign: rsa3072",
        ),
        (
            "  sign: rsa3072\n",
            "esp32c2",
            "ota.sign: esp32c2 cannot verify rsa3072 signatures "
            "(its Secure Boot V2 supports ecdsa256 only); use ota.sign: ecdsa256",
        ),
        (
            "  sign: ecdsa192\n",
            "esp32",
            "ota.sign: 'ecdsa192' is refused: NIST P-192 is the "
            "weaker of Secure Boot V2's two ECDSA curves; use rsa3072, or ecdsa256 where the "
            "target has it",
        ),
    ],
)
def test_load__sign_scheme_per_target(extra: str, target: str, line: str) -> None:
    text = _with(EXAMPLE, extra).replace("target: esp32", f"target: {target}")
    text = text.replace("freq: 40m", "freq: 60m") if target == "esp32c2" else text
    assert any(found.endswith(line) for found in errors(text)), errors(text)


def test_load__secure_version_rules() -> None:
    found = errors(_with(EXAMPLE, app_extra=", secure_version: 33"))
    assert any(
        "apps.hello_world.secure_version: 33 is out of range; use 0 to 32" in f for f in found
    ), found
    found = errors(_with(EXAMPLE, app_extra=", secure_version: 1"))
    assert any(
        f.endswith(
            "apps.hello_world.secure_version: anti-rollback needs app rollback "
            "(CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK depends on "
            "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE); set ota.rollback: true"
        )
        for f in found
    ), found
    c2 = (
        _with(EXAMPLE, "  rollback: true\n", ", secure_version: 5")
        .replace("target: esp32", "target: esp32c2")
        .replace("freq: 40m", "freq: 60m")
    )
    assert any(
        "Max secure version is 4. Given 5 version can not be written." in f for f in errors(c2)
    ), errors(c2)
    found = errors(_with(EXAMPLE, "  rollback: true\n", ", secure_version: 1"))
    assert any(
        f.endswith(
            "partitions.layout: Anti-rollback option is enabled. Partition table "
            "should consist of two ota app without factory or test partitions.; "
            "use a layout of otadata, ota_0 and ota_1 only (apps.<name>."
            "secure_version turns anti-rollback on)"
        )
        for f in found
    ), found


def test_load__options_the_features_set_cannot_be_set_by_hand() -> None:
    text = _with(EXAMPLE, "  rollback: true\n").replace(
        "sdkconfig: {}", "sdkconfig: {CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE: false}"
    )
    assert any(
        f.endswith(
            "sdkconfig.CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE: "
            "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE is set by ota.rollback; remove it "
            "here and keep ota.rollback"
        )
        for f in errors(text)
    ), errors(text)
    plain = EXAMPLE.replace(
        "sdkconfig: {}", "sdkconfig: {CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE: true}"
    )
    assert load(plain).sdkconfig == (("CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE", True),)


def test_sdkconfig__the_options_of_each_feature() -> None:
    project = load(_with(EXAMPLE, "  sign: rsa3072\n  rollback: true\n"))
    groups = dict(defaults.plan(project, project.app("factory"), partitions_csv=Path("p")).groups)
    assert groups["signed apps (ota.sign)"] == (
        ("CONFIG_SECURE_SIGNED_APPS_NO_SECURE_BOOT", "y"),
        ("CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT", "y"),
        ("CONFIG_SECURE_SIGNED_APPS_RSA_SCHEME", "y"),
        ("CONFIG_SECURE_BOOT_BUILD_SIGNED_BINARIES", "n"),
        ("CONFIG_ESP32_REV_MIN_3", "y"),  # SECURE_BOOT_V2_RSA_SUPPORTED on the ESP32
    )
    assert groups["app rollback (ota.rollback)"] == (
        ("CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE", "y"),
    )


# --- serve refuses unsigned, wrongly signed and downgraded images ----------------------------


def _signed_site(root: Path, key: Path, image: bytes) -> serving.ServePlan:
    site = make_site(root, image=image)
    signing_plan = signing_key.SigningPlan(scheme="rsa3072", key=key, from_env=False)
    return dataclasses.replace(site.plan, signing=signing_plan)


def test_serve__refuses_unsigned_and_wrongly_signed(keys: dict[str, Path], tmp_path: Path) -> None:
    plan = _signed_site(tmp_path / "a", keys["rsa3072"], cached_image())
    with pytest.raises(serving.ServeError) as caught:
        serving.check(plan, emit=lambda _: None)
    assert str(caught.value) == (
        "cannot serve hello_world.bin: no Secure Boot V2 signature block (the image is unsigned); "
        "boards would refuse it: run `doit build:hello_world`"
    )
    other = signing.sign(keys["other"], cached_image())
    plan = _signed_site(tmp_path / "b", keys["rsa3072"], other)
    with pytest.raises(serving.ServeError, match="signature does not verify with the key"):
        serving.check(plan, emit=lambda _: None)
    good = signing.sign(keys["rsa3072"], cached_image())
    plan = _signed_site(tmp_path / "c", keys["rsa3072"], good)
    content = serving.check(plan, emit=lambda _: None)
    assert content.image.signed and content.image.size == len(good)
    assert content.resources[plan.url_path].body == good  # type: ignore[attr-defined]


def test_serve__warns_for_each_board_that_would_refuse(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    """A board whose eFuse reached a higher secure_version, or whose app trusts another key,
    is named in one warning each; the others are served as before."""
    site = _signed_site(tmp_path, keys["rsa3072"], signing.sign(keys["rsa3072"], cached_image()))
    ours = signing.public_key_digest(keys["rsa3072"].read_bytes())
    other = signing.public_key_digest(keys["other"].read_bytes())
    running = dataclasses.replace(BOARD.app, version="1.0.0", secure_version=1)
    boards = {
        "aa:bb:cc:dd:ee:01": dict(efuse_secure_version=1, trusted_key_sha256=ours),
        "aa:bb:cc:dd:ee:02": dict(efuse_secure_version=0, trusted_key_sha256=other),
        "aa:bb:cc:dd:ee:03": dict(efuse_secure_version=0, trusted_key_sha256=ours),
    }
    for mac, fields in boards.items():
        record.write(site.boards_dir, dataclasses.replace(BOARD, mac=mac, app=running, **fields))
    notes: list[str] = []
    serving.check(site, emit=notes.append)
    refused = [note for note in notes if "it will refuse this update" in note]
    assert refused == [
        "board aa:bb:cc:dd:ee:01: its anti-rollback eFuse holds secure_version 1, and "
        "hello_world.bin has 0; it will refuse this update: set apps.hello_world.secure_version "
        "to 1 or more",
        f"board aa:bb:cc:dd:ee:02: its app trusts signing key {other[:16]}… only, and "
        f"hello_world.bin is signed with key {ours[:16]}…; it will refuse this update (secure "
        "boot signature verification failed): flash it over serial with `doit flash`",
    ]


# --- otadata: the states ESP-IDF writes (esp_flash_partitions.h values) ----------------------


def test_states__esp_idf_values_and_names() -> None:
    assert (otadata.NEW, otadata.PENDING_VERIFY, otadata.VALID) == (0, 1, 2)
    assert (otadata.INVALID, otadata.ABORTED, otadata.UNDEFINED) == (3, 4, 0xFFFFFFFF)
    assert list(otadata.STATE_NAMES.values()) == [
        "new",
        "pending verify",
        "valid",
        "invalid",
        "aborted",
        "undefined",
    ]


def _table() -> rules.PartitionTable:
    return load(EXAMPLE).table


def test_select__rollback_new_pending_aborted() -> None:
    table = _table()
    data = otadata.set_boot(table, otadata.blank(), table.ota_slots[0], state=otadata.NEW)
    assert otadata.decode(data)[0] == otadata.OtadataEntry.for_seq(1, otadata.NEW)
    first = otadata.select(table, data, rollback=True)
    assert first.slot == table.ota_slots[0] and first.active_state == otadata.PENDING_VERIFY
    assert otadata.decode(first.data)[0].state == otadata.PENDING_VERIFY
    second = otadata.select(table, first.data, rollback=True)  # reset before confirming
    assert second.slot == table.factory and "Defaulting to factory image" in second.lines
    assert otadata.decode(second.data)[0].state == otadata.ABORTED
    confirmed = otadata.mark_valid(first.data)
    assert otadata.decode(confirmed)[0] == otadata.OtadataEntry.for_seq(1, otadata.VALID)
    assert otadata.select(table, confirmed, rollback=True).data == confirmed  # nothing written


def test_set_actual_seq__what_the_bootloader_writes_with_no_factory() -> None:
    data = otadata.set_actual_seq(otadata.blank(), 1)
    assert data[:32] == otadata.OtadataEntry.for_seq(2, otadata.VALID).to_bytes()
    assert data[32:] == b"\xff" * (0x2000 - 32)


def test_model_reference_documents_the_new_keys() -> None:
    from esp_ota_doit.config import reference

    keys = [row[0] for row in reference.reference_rows()]
    assert {"ota.sign", "ota.rollback", "apps.<name>.secure_version"} <= set(keys)
    assert model.Ota.__dataclass_fields__["sign"].metadata["default"] is None


def test_readme__the_production_example_is_valid() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Production OTA", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    project = load("name: ota-demo\nflash: {size: 4MB}\n" + example)
    assert project.ota is not None and project.ota.sign == "rsa3072" and project.ota.rollback
    assert [app.secure_version for app in project.apps] == [1, 2]
