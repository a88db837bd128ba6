"""Releases: esp_delta_ota's and esp_encrypted_img's formats against Espressif's own test vectors
(tests/data/espressif/), releases that never change, and what serve and publish deliver from one.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
from pathlib import Path

import pytest
from esp_ota_doit.config import loader
from esp_ota_doit.errors import ConfigErrors
from esp_ota_doit.idf import delta_ota, encrypted_img
from esp_ota_doit.paths import Paths
from esp_ota_doit.release import release_record, releasing
from esp_ota_doit.serve import serving

from tests.conftest import REPO
from tests.doitrun import edit, run_with_output
from tests.test_serve import PROJECT_YAML, make_image, make_site

VECTORS = REPO / "tests" / "data" / "espressif"


# ---------------------------------------------------------------- esp_delta_ota's patch format


def test_delta__the_body_is_espressifs_test_patch_byte_for_byte() -> None:
    base, new = (VECTORS / "delta_base.bin").read_bytes(), (VECTORS / "delta_new.bin").read_bytes()
    patch = (VECTORS / "delta_patch.bin").read_bytes()
    assert delta_ota.create_body(base, new) == patch
    assert delta_ota.apply_body(base, patch) == new


def test_delta__header_is_magic_base_hash_and_zeros() -> None:
    base, new = make_image(size=20_000), make_image(version="1.0.2", size=20_000)
    patch = delta_ota.create(base, new, "esp32", base_name="base.bin")
    assert patch[:4] == bytes.fromhex("10decdfc")  # 0xfccdde10, little-endian
    assert patch[4:36] == base[-32:]  # the appended SHA-256 esptool calls the Validation Hash
    assert patch[36:64] == bytes(28)
    assert delta_ota.header_base_hash(patch) == base[-32:]
    assert delta_ota.apply_body(base, patch[64:]) == new


def test_delta__a_base_without_an_appended_hash_is_refused() -> None:
    from esptool.bin_image import LoadFirmwareImage

    image = LoadFirmwareImage("esp32", make_image(size=4096))
    image.append_digest = False
    unhashed = bytes(image.save(None))
    with pytest.raises(delta_ota.DeltaError) as caught:
        delta_ota.create(unhashed, make_image(size=4096), "esp32", base_name="old.bin")
    assert str(caught.value) == (
        "old.bin has no appended SHA-256 (esptool image-info shows no Validation Hash), so "
        "esp_delta_ota cannot check a board runs it; it cannot be a delta base"
    )


def test_delta__a_bad_magic_is_refused_as_the_example_words_it() -> None:
    with pytest.raises(delta_ota.DeltaError, match=r"^Invalid magic word in patch$"):
        delta_ota.header_base_hash(bytes(64))


# -------------------------------------------------------- esp_encrypted_img's image format


def test_encrypted__espressifs_test_image_decrypts_with_its_key() -> None:
    data = (VECTORS / "encrypted_image.bin").read_bytes()
    image = encrypted_img.decrypt(data, (VECTORS / "encrypted_image_key.pem").read_bytes())
    assert len(image) == int.from_bytes(data[404:408], "little") == len(data) - 512
    tampered = bytearray(data)
    tampered[600] ^= 0x01
    with pytest.raises(encrypted_img.EncryptedImageError, match=r"^Invalid Auth Tag"):
        encrypted_img.decrypt(bytes(tampered), (VECTORS / "encrypted_image_key.pem").read_bytes())


def test_encrypted__our_image_has_the_header_and_decrypts() -> None:
    private = (VECTORS / "encrypted_image_key.pem").read_bytes()
    image = make_image(size=5000)
    data = encrypted_img.encrypt(image, encrypted_img.public_key(private))
    assert int.from_bytes(data[:4], "little") == 0x0788B6CF
    assert int.from_bytes(data[404:408], "little") == len(image)
    assert data[424:512] == bytes(88)
    assert len(data) == 512 + len(image)
    assert encrypted_img.decrypt(data, private) == image
    with pytest.raises(encrypted_img.EncryptedImageError, match=r"^Magic Verification failed$"):
        encrypted_img.decrypt(bytes(4) + data[4:], private)


# ------------------------------------------------------------------------ release records


def _release(root: Path, text: str | None = None) -> release_record.Release:
    text = text or (root / "project.yaml").read_text()
    project = loader.load(
        text, file="project.yaml", env={}, resolve_host=lambda h: h, project_dir=root
    )
    plan = releasing.plan(project, Paths(root))
    assert plan is not None
    return releasing.record_release(plan)


def _rebuild(root: Path, image: bytes) -> None:
    """build/hello_world/ as `doit build` leaves it after building these bytes."""
    from esp_ota_doit.firmware import outputs

    summary_file = Paths(root).app_summary("hello_world")
    summary = outputs.read(summary_file)
    summary.app_file.write_bytes(image)
    from tests.test_serve import summary as app_summary

    outputs.write(summary_file, app_summary("hello_world", summary.app_file, image, ca_sha256=None))


def test_release__is_recorded_once_and_never_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path, image=make_image(size=4096))
    folder = tmp_path / "releases" / "hello_world" / "1.0.1"
    released = release_record.read(folder)
    assert (folder / "hello_world.bin").read_bytes() == site.image
    assert released.sha256 == hashlib.sha256(site.image).hexdigest() == released.image.sha256
    assert (released.version, released.target, released.idf_version) == ("1.0.1", "esp32", "v5.3.2")
    assert sorted(p.name for p in folder.iterdir()) == ["hello_world.bin", "release.json"]
    assert _release(tmp_path) == released  # the same bytes again: nothing happens
    assert "release hello_world 1.0.1: already recorded, unchanged" in capsys.readouterr().out
    _rebuild(tmp_path, make_image(size=4100))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(releasing.ReleaseError) as caught:
        _release(tmp_path)
    assert str(caught.value).startswith("hello_world 1.0.1 is already released with other bytes")
    assert str(caught.value).endswith("a release never changes: bump apps.hello_world.version")
    assert "\n" not in str(caught.value)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def _delta_site(tmp_path: Path) -> Path:
    """Three releases with ota.delta: 1.0.1, 1.0.2 and 1.0.3 (patches from both earlier)."""
    root = tmp_path / "p"
    make_site(root, image=make_image(size=60_000), release=False)
    yaml = root / "project.yaml"
    yaml.write_text(
        yaml.read_text().replace("  bind: 127.0.0.1", "  bind: 127.0.0.1\n  delta: true")
    )
    _release(root)
    for version in ("1.0.2", "1.0.3"):
        yaml.write_text(yaml.read_text().replace("version: 1.0.1", f"version: {version}"))
        _rebuild(root, make_image(version=version, size=60_000))
        _release(root)
        yaml.write_text(yaml.read_text().replace(f"version: {version}", "version: 1.0.1"))
    yaml.write_text(
        yaml.read_text().replace('hello_world", version: 1.0.1', 'hello_world", version: 1.0.3')
    )
    return root


def test_release__delta_patches_from_the_latest_earlier_releases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _delta_site(tmp_path)
    out = capsys.readouterr().out
    assert "no earlier release: the first one has no patch" in out
    assert "patch from 1.0.2: hello_world-from-1.0.2.patch" in out and "% of the full image" in out
    folder = root / "releases" / "hello_world"
    latest = release_record.read(folder / "1.0.3")
    assert [p.from_version for p in latest.patches] == ["1.0.2", "1.0.1"]
    new = (folder / "1.0.3" / "hello_world.bin").read_bytes()
    for patch in latest.patches:
        base = (folder / patch.from_version / "hello_world.bin").read_bytes()
        body = (folder / "1.0.3" / patch.entry.file).read_bytes()
        assert body[4:36] == base[-32:]
        assert delta_ota.apply_body(base, body[64:]) == new
        assert patch.from_sha256 == hashlib.sha256(base).hexdigest()


def test_serve__delivers_the_release_with_every_patch_listed(tmp_path: Path) -> None:
    root = _delta_site(tmp_path)
    text = (root / "project.yaml").read_text()
    project = loader.load(
        text, file="project.yaml", env={}, resolve_host=lambda h: h, project_dir=root
    )
    content = serving.check(serving.plan(project, Paths(root)), emit=lambda _: None)
    folder = root / "releases" / "hello_world" / "1.0.3"
    assert sorted(content.resources) == [
        "/hello_world-from-1.0.1.patch",
        "/hello_world-from-1.0.2.patch",
        "/hello_world.bin",
        "/hello_world.bin.patch",
        "/hello_world.bin.sha256",
        "/manifest.json",
    ]
    assert (
        content.resources["/hello_world.bin.patch"].body
        == (folder / "hello_world-from-1.0.2.patch").read_bytes()
    )
    manifest = json.loads(content.resources["/manifest.json"].body)
    patches = manifest["builds"][0]["ota"]["patches"]
    assert [(p["from_version"], p["path"]) for p in patches] == [
        ("1.0.2", "hello_world-from-1.0.2.patch"),
        ("1.0.1", "hello_world-from-1.0.1.patch"),
    ]
    for patch in patches:
        body = (folder / patch["path"]).read_bytes()
        assert (patch["size"], patch["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


# ------------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("extra", "layout", "line"),
    [
        (
            "  delta: true\n",
            "partitions:\n  layout:\n"
            "    - {name: nvs, type: data, subtype: nvs, size: 0x4000}\n"
            "    - {name: otadata, type: data, subtype: ota, size: 0x2000}\n"
            "    - {name: factory, type: app, subtype: factory, size: 1M}\n"
            "    - {name: ota_0, type: app, subtype: ota_0, size: 1M}\n",
            ": ota.delta: esp_delta_ota rebuilds the new image from the running OTA slot into the "
            "passive one, so it needs two OTA slots (ota_0, ota_1)",
        ),
        (
            "  delta: true\n  encrypt: rsa3072\n",
            "",
            "ota.encrypt: ota.encrypt and ota.delta do not combine",
        ),
    ],
)
def test_rules__delta_needs_two_slots_and_does_not_combine_with_encrypt(
    tmp_path: Path, extra: str, layout: str, line: str
) -> None:
    text = PROJECT_YAML.format(target="esp32", host="127.0.0.1", port=8070)
    text = text.replace("  bind: 127.0.0.1\n", "  bind: 127.0.0.1\n" + extra) + layout
    with pytest.raises(ConfigErrors) as caught:
        loader.load(
            text, file="project.yaml", env={}, resolve_host=lambda h: h, project_dir=tmp_path
        )
    assert line in str(caught.value)


def test_rules__encrypt_with_a_client_that_does_not_decrypt_names_it(app_copy) -> None:  # type: ignore[no-untyped-def]
    folder = app_copy("sensor_node")
    root = folder.parent
    text = f"""\
name: t
target: esp32
flash: {{size: 4MB}}
apps:
  node: {{path: {folder.name}, version: 1.0.0, ota_client: true}}
flash_app: node
ota: {{url: "https://127.0.0.1:8070/node.bin", image: node, encrypt: rsa3072}}
"""
    with pytest.raises(ConfigErrors) as caught:
        loader.load(text, file="project.yaml", env={}, resolve_host=lambda h: h, project_dir=root)
    assert (
        "ota.encrypt: OTA client app 'node' does not decrypt: its code never calls "
        "esp_encrypted_img_decrypt_start" in str(caught.value)
    )


# --------------------------------------------------------------------------- the rehearsals

pytestmark_rehearse = pytest.mark.skipif(
    __import__("importlib").util.find_spec("esp32_mock_bootloader") is None,
    reason="esp32-mock-bootloader not installed (pip install -e '.[test]')",
)


@pytestmark_rehearse
def test_rehearse__delta_from_the_previous_release(rehearsal: Path) -> None:
    edit(
        rehearsal,
        "  cert: {key: ec-p256, days: 825}",
        "  cert: {key: ec-p256, days: 825}\n  delta: true",
    )
    code, _, text = run_with_output(rehearsal, "rehearse", "--delta")
    assert code == 1
    assert "--delta needs a patch in" in text and "bump apps.hello_world.version" in text
    edit(rehearsal, "version: 1.0.1", "version: 1.0.2")
    code, _, text = run_with_output(rehearsal, "rehearse", "--delta")
    assert code == 0, text
    assert "patch from 1.0.1: hello_world-from-1.0.1.patch" in text
    assert "ota: bytes on the air: " in text and "(the patch)" in text
    assert "ota: patch header: base SHA-256" in text
    assert "bytes on the air: " in text.split("== reboot")[-1]
    assert text.rstrip().endswith("booted ota_1: hello_world 1.0.2")
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", "delta-base")
    assert code == 0, text
    last = text.rstrip().splitlines()[-1]
    assert re.fullmatch(
        r"the board still boots factory; the update was refused: SHA256 of current firmware "
        r"differs from than in patch header\. Invalid patch for current firmware \(running "
        r"[0-9a-f]{16}…, patch for [0-9a-f]{16}…\)",
        last,
    ), last
    assert "booted factory: simple_ota 1.0.0" in text


@pytestmark_rehearse
def test_rehearse__encrypted_images(rehearsal: Path) -> None:
    edit(
        rehearsal,
        "  cert: {key: ec-p256, days: 825}",
        "  cert: {key: ec-p256, days: 825}\n  encrypt: rsa3072",
    )
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 1
    assert (
        "ota.encrypt: OTA client app 'factory' does not decrypt: its code never calls "
        "esp_encrypted_img_decrypt_start"
    ) in text
    edit(rehearsal, "ota/simple_ota_example", "ota/pre_encrypted_ota")
    code, _, text = run_with_output(rehearsal, "rehearse")
    assert code == 0, text
    assert "ota: esp_encrypted_img: Magic Verified" in text
    assert text.rstrip().endswith("booted ota_0: hello_world 1.0.1")
    key = rehearsal / "keys" / "encryption_key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    placed = rehearsal / "build/virtual/src/factory/rsa_key/private.pem"
    assert placed.read_bytes() == key.read_bytes()
    folder = rehearsal / "build/virtual/releases/hello_world/1.0.1"
    secret = key.read_bytes().strip()
    for path in folder.iterdir():
        assert secret not in path.read_bytes()
    image = (folder / "hello_world.bin").read_bytes()
    encrypted = (folder / "hello_world-encrypted.bin").read_bytes()
    assert encrypted_img.decrypt(encrypted, key.read_bytes()) == image
    code, _, text = run_with_output(rehearsal, "rehearse", "--fail", "corrupt")
    assert code == 0, text
    assert text.rstrip().endswith(
        "the board still boots factory; the update was refused: esp_encrypted_img: Invalid Auth "
        "Tag (GCM): the image was changed"
    )


def test_release__through_doit_refuses_other_bytes_for_a_released_version(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, text = run_with_output(built, "release")
    assert code == 0, text
    assert "released hello_world 1.0.1:" in text
    released = (built / "releases/hello_world/1.0.1/hello_world.bin").read_bytes()
    code, results, _ = run_with_output(built, "release")
    assert (code, results["release"]) == (0, "up-to-date")
    # The same version, built with other bytes (a sdkconfig change, no version bump).
    edit(built, "sdkconfig: {}", "sdkconfig: {CONFIG_LOG_DEFAULT_LEVEL_WARN: y}")
    code, _, text = run_with_output(built, "publish")
    assert code == 1
    lines = [line for line in text.splitlines() if "already released" in line]
    assert len(lines) == 1
    assert lines[0].startswith("hello_world 1.0.1 is already released with other bytes")
    assert lines[0].endswith("a release never changes: bump apps.hello_world.version")
    assert (built / "releases/hello_world/1.0.1/hello_world.bin").read_bytes() == released
    assert not (built / "build/publish/www/hello_world.bin").exists()
    edit(built, 'hello_world", version: 1.0.1', 'hello_world", version: 1.0.2')
    code, _, text = run_with_output(built, "publish")
    assert code == 0, text
    www = built / "build/publish/www/hello_world.bin"
    assert www.read_bytes() == (built / "releases/hello_world/1.0.2/hello_world.bin").read_bytes()
    # An earlier release on purpose; then the current one again.
    code, _, text = run_with_output(built, "publish", "--release", "1.0.1")
    assert code == 0, text
    assert www.read_bytes() == released
    code, _, text = run_with_output(built, "publish")
    assert code == 0, text
    assert www.read_bytes() == (built / "releases/hello_world/1.0.2/hello_world.bin").read_bytes()


def test_release__signing_key_digest_is_espsecures(tmp_path: Path) -> None:
    import subprocess
    import sys

    from esp_ota_doit.idf import signing

    key = tmp_path / "keys" / "signing_key.pem"
    signing.new_key("rsa3072", key)
    out = tmp_path / "digest.bin"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "espsecure",
            "digest-sbv2-public-key",
            "--keyfile",
            str(key),
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    from esp_ota_doit.firmware.signing_key import SigningPlan

    plan = SigningPlan(scheme="rsa3072", key=key, from_env=False, target="esp32")
    # What release.json records: the one key loader's digest of the project key.
    assert releasing._signing_key(plan).digest == out.read_bytes().hex()


def test_release__an_image_that_embeds_the_decryption_key_is_kept_encrypted_only(
    tmp_path: Path,
) -> None:
    from esp_ota_doit.firmware import encryption_key
    from esptool.bin_image import LoadFirmwareImage

    key = tmp_path / "keys" / "encryption_key.pem"
    key.parent.mkdir()
    key.write_bytes(encrypted_img.new_key())
    image = LoadFirmwareImage("esp32", make_image(size=8000))
    code = image.segments[1].data
    image.segments[1].data = key.read_bytes() + code[len(key.read_bytes()) :]
    embedding = bytes(image.save(None))
    root = tmp_path / "p"
    make_site(root, image=embedding, release=False)
    _rebuild(root, embedding)
    text = (
        (root / "project.yaml")
        .read_text()
        .replace("  bind: 127.0.0.1", "  bind: 127.0.0.1\n  encrypt: rsa3072")
    )
    project = loader.load(
        text, file="project.yaml", env={}, resolve_host=lambda h: h, project_dir=root
    )
    encryption = encryption_key.EncryptionPlan(scheme="rsa3072", key=key, from_env=False)
    plan = releasing.plan(project, Paths(root), encryption=encryption)
    assert plan is not None
    released = releasing.record_release(plan)
    folder = root / "releases" / "hello_world" / "1.0.1"
    assert released.image is None
    assert sorted(p.name for p in folder.iterdir()) == ["hello_world-encrypted.bin", "release.json"]
    secret = key.read_bytes().strip()
    assert all(secret not in p.read_bytes() for p in folder.iterdir())
    encrypted = (folder / "hello_world-encrypted.bin").read_bytes()
    assert encrypted_img.decrypt(encrypted, key.read_bytes()) == embedding
    content = serving.check(serving.plan(project, Paths(root)), emit=lambda _: None)
    assert content.resources["/hello_world.bin"].body == encrypted
    assert (
        json.loads(content.resources["/manifest.json"].body)["builds"][0]["ota"]["image_sha256"]
        == hashlib.sha256(embedding).hexdigest()
    )


def test_encryption_key__made_once_0600_or_named_by_the_environment(tmp_path: Path) -> None:
    from esp_ota_doit.errors import ConfigError
    from esp_ota_doit.firmware import encryption_key

    text = PROJECT_YAML.format(target="esp32", host="127.0.0.1", port=8070).replace(
        "  bind: 127.0.0.1", "  bind: 127.0.0.1\n  encrypt: rsa3072"
    )
    project = loader.load(
        text, file="project.yaml", env={}, resolve_host=lambda h: h, project_dir=tmp_path
    )
    plan = encryption_key.plan(project, {}, tmp_path / "keys")
    assert plan is not None and plan.key == tmp_path / "keys" / "encryption_key.pem"
    assert encryption_key.create_key(plan).startswith("encryption key created:")
    made = plan.key.read_bytes()
    assert stat.S_IMODE(plan.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(plan.key.parent.stat().st_mode) == 0o700
    assert encryption_key.create_key(plan) == f"encryption key: {plan.key} (rsa3072)"
    assert plan.key.read_bytes() == made
    named = encryption_key.plan(project, {"OTA_ENCRYPTION_KEY": str(plan.key)}, tmp_path / "x")
    assert named is not None and named.from_env and named.key == plan.key
    with pytest.raises(ConfigError, match=r"\$OTA_ENCRYPTION_KEY names '/nope.pem'"):
        encryption_key.plan(project, {"OTA_ENCRYPTION_KEY": "/nope.pem"}, tmp_path / "keys")
