"""Building an app with idf.py: finding ESP-IDF, the command line, staging, and the one runner.

The command line and outputs follow ESP-IDF v5.3's idf.py contract (docs/esp-idf.md §5);
production code relies on nothing a real idf.py does not document, so any faithful stand-in works
too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import process
from ..errors import ToolError, warn
from ..files import write_if_changed
from ..idf import app as idfapp
from ..idf import app_code, esptool_log, kconfig, sdkconfig, signing
from ..idf import images as image_checks
from ..idf.idftool import IdfTool, find_idf
from ..tls import certs
from . import outputs, signing_key, took_effect
from .build_plan import BuildPlan, idf_identity, plan, plans
from .outputs import AppSummary, EsptoolArgs, FlashSettings, ImageEntry
from .staging import stage

if TYPE_CHECKING:
    from ..idf.images import AppImage

__all__ = [
    "BuildPlan",
    "build_app",
    "config_unchanged",
    "idf_identity",
    "outputs_intact",
    "plan",
    "plans",
    "prepare",
    "read_flasher_args",
    "unmet_options",
]


def defaults_digest(plan: BuildPlan) -> str:
    """What the sdkconfig was made from; when it changes, the old sdkconfig is stale (§5.4)."""
    digest = hashlib.sha256(plan.target.encode())
    for path in plan.defaults:
        # ESP-IDF applies F.<target> right after each defaults file F (§5.4).
        for layer in (path, path.with_name(f"{path.name}.{plan.target}")):
            digest.update(layer.read_bytes() if layer.exists() else b"")
    return digest.hexdigest()


def read_flasher_args(build_dir: Path) -> dict[str, object]:
    """build/<app>/flasher_args.json (docs/esp-idf.md §5.5); missing: the build did not finish."""
    path = build_dir / "flasher_args.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToolError(f"{path} is missing; the build did not finish (run doit build)") from None
    except json.JSONDecodeError as error:
        raise ToolError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ToolError(f"{path} is not a JSON object")
    return data


def unmet_options(
    plan: BuildPlan,
    config_json: Mapping[str, object],
    written: Mapping[str, str] | None = None,
    menus: list[Any] | None = None,
    renames: Mapping[str, str] | None = None,
    *,
    minimal_build: bool = False,
) -> list[str]:
    """Each option project.yaml asked for that the built configuration does not have, with its
    cause when the build's kconfig_menus.json is given (took_effect.unmet)."""
    return took_effect.unmet(
        plan.options,
        config_json,
        secret_options=plan.secret_options,
        written=written,
        menus=menus,
        renames=renames,
        target=plan.target,
        minimal_build=minimal_build,
    )


_ROLES = ("bootloader", "partition-table", "otadata", "app")


def _state_file(plan: BuildPlan) -> Path:
    return plan.build_dir / "ota-build-state.json"


def _state(plan: BuildPlan) -> dict[str, Any]:
    """What the last prepare/build recorded: the defaults digest, target, sdkconfig built."""
    try:
        state = json.loads(_state_file(plan).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _written_config(plan: BuildPlan) -> dict[str, str]:
    """The app's sdkconfig as written, {} before the first configure."""
    return sdkconfig.parse(plan.sdkconfig.read_text()) if plan.sdkconfig.exists() else {}


def prepare(plan: BuildPlan) -> None:
    """Stage the sources, place the CA, and drop an sdkconfig made from other defaults."""
    stage(plan.source, plan.project_dir, keep=plan.placed, project_dir=plan.project_root)
    if plan.ca_source is not None and plan.ca_dest is not None:
        certs.place_ca(plan.ca_source, plan.ca_dest)
    if plan.decrypt_key_dest is not None and not app_code.decrypts(plan.project_dir):
        raise ToolError(
            f"ota.encrypt: OTA client app '{plan.app}' does not decrypt: its code never calls "
            f"{app_code.DECRYPT_CALL} (esp_encrypted_img); use an OTA client built on "
            "esp_encrypted_img (like ESP-IDF's examples/system/ota/pre_encrypted_ota), or remove "
            "ota.encrypt"
        )
    if plan.decrypt_key_source is not None and plan.decrypt_key_dest is not None:
        # Where the app embeds it (pre_encrypted_ota: rsa_key/private.pem), private to its owner.
        plan.decrypt_key_dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_if_changed(plan.decrypt_key_dest, plan.decrypt_key_source.read_bytes(), mode=0o600)
    state = _state(plan)
    digest = defaults_digest(plan)
    if state.get("defaults") != digest:
        # ESP-IDF applies defaults only to options missing from an existing sdkconfig (§5.4).
        plan.sdkconfig.unlink(missing_ok=True)
    reset = state.get("target") not in (None, plan.target)
    if state.get("idf") not in (None, plan.idf):
        # CMakeCache.txt and sdkconfig name the old IDF_PATH and release: start clean.
        print(f"app '{plan.app}': rebuilding, ESP-IDF changed: {state['idf']} -> {plan.idf}")
        reset = True
    if reset and plan.build_dir.is_dir():
        # A CMake cache for another target makes idf.py stop; the build dir is ours to reset.
        shutil.rmtree(plan.build_dir)
        state = {}
    plan.build_dir.mkdir(parents=True, exist_ok=True)
    state.update(defaults=digest, target=plan.target, idf=plan.idf)
    write_if_changed(_state_file(plan), json.dumps(state))


def _check_config(plan: BuildPlan) -> None:
    path = plan.build_dir / "config" / "sdkconfig.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError) as error:
        raise ToolError(f"{path} cannot be read after the build ({error})") from None
    try:
        menus = json.loads((path.parent / "kconfig_menus.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        menus = None  # an idf.py that does not write it: the causes stay generic
    renames = kconfig.build_renames(plan.build_dir)
    minimal = took_effect.minimal_build(plan.project_dir)
    problems = unmet_options(
        plan, config, _written_config(plan), menus, renames, minimal_build=minimal
    )
    if problems:
        raise ToolError(
            f"app '{plan.app}': {len(problems)} option(s) did not take effect: "
            + "; ".join(problems)
        )


def _images(
    plan: BuildPlan, flasher: Mapping[str, object]
) -> tuple[list[ImageEntry], dict[str, bytes]]:
    """Each flash image flasher_args.json names (for app.json), and its bytes by role."""
    images: list[ImageEntry] = []
    contents: dict[str, bytes] = {}
    for role in _ROLES:
        entry = flasher.get(role)
        if not isinstance(entry, dict):
            continue
        path = plan.build_dir / str(entry["file"])
        data = contents[role] = path.read_bytes()
        images.append(
            ImageEntry(
                role=role,
                offset=int(str(entry["offset"]), 16),
                file=path,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                encrypted=str(entry.get("encrypted", "false")) == "true",
            )
        )
    return images, contents


def _check_images(
    plan: BuildPlan, images: Sequence[ImageEntry], contents: Mapping[str, bytes]
) -> AppImage:
    """Verify bootloader and app with esptool; the app must fit its slots. Returns the app facts."""
    app_entry = next((entry for entry in images if entry.role == "app"), None)
    if app_entry is None or "app" not in contents:
        raise ToolError(f"{plan.build_dir / 'flasher_args.json'} names no app image")
    app_name = app_entry.file.name
    if "bootloader" in contents:
        image_checks.read_bootloader(contents["bootloader"], plan.target)
    app = image_checks.read_app(contents["app"], plan.target, name=app_name)
    if app.version != plan.version:
        raise ToolError(
            f"{app_name} carries version '{app.version}', project.yaml asks for "
            f"'{plan.version}' (apps.{plan.app}.version); a CMakeLists.txt may set PROJECT_VER"
        )
    note = image_checks.fit_warning(app, plan.slots)
    if note:
        warn(note)
    return app


def _signed(
    plan: BuildPlan,
    key: signing_key.SigningKey,
    images: list[ImageEntry],
    contents: dict[str, bytes],
) -> tuple[list[ImageEntry], dict[str, bytes]]:
    """Sign the app into <name>-signed.bin (idf.py's own .bin stays unsigned, as ninja made it)
    with the key here or ota.sign_command, verify it with espsecure against the public key, and
    list the signed file instead."""
    entry = next((image for image in images if image.role == "app"), None)
    if entry is None:
        return images, contents
    target = entry.file.with_name(f"{entry.file.stem}-signed.bin")
    data = key.sign(contents["app"])
    try:
        signing.verify(data, key.public_pem, target.name)
    except signing.SignatureError as error:
        raise ToolError(f"app '{plan.app}': {error}") from None
    write_if_changed(target, data, mode=0o600 if plan.secret_options else 0o644)
    signed = dataclasses.replace(
        entry, file=target, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    return [signed if image is entry else image for image in images], {**contents, "app": data}


def _merged(plan: BuildPlan, settings: FlashSettings, images: Sequence[ImageEntry]) -> bytes:
    """One image for factory programming (esptool merge-bin), header settings from the build."""
    from esptool.cmds import merge_bin

    with esptool_log.quiet_esptool(esptool_log.Progress()):  # its notes are not news here
        data = merge_bin(
            [(image.offset, str(image.file)) for image in images],
            plan.target,
            output=None,
            flash_mode=settings.flash_mode or "keep",
            flash_freq=settings.flash_freq or "keep",
            flash_size=settings.flash_size or "keep",
        )
    return bytes(data or b"")


def _flash_settings(flasher: Mapping[str, object]) -> FlashSettings:
    settings = flasher.get("flash_settings")
    settings = settings if isinstance(settings, dict) else {}
    return FlashSettings(
        **{name: settings.get(name) for name in ("flash_mode", "flash_size", "flash_freq")}
    )


def _esptool_args(flasher: Mapping[str, object]) -> EsptoolArgs:
    extra = flasher.get("extra_esptool_args")
    extra = extra if isinstance(extra, dict) else {}
    return EsptoolArgs(
        before=str(extra.get("before", "default_reset")),
        after=str(extra.get("after", "hard_reset")),
        stub=bool(extra.get("stub", True)),
    )


def build_app(plan: BuildPlan, idf: IdfTool | None = None) -> None:
    """doit build:<app> — stage, idf.py build, check the configuration and the images, and
    write build/<app>/app.json (what flash, serve and the manifest read)."""
    # The key is checked before anything is built: a bad one would only fail after idf.py.
    key = signing_key.load(plan.signing, os.environ) if plan.signing is not None else None
    idf = idf or find_idf(os.environ, plan.idf_version)
    prepare(plan)
    log = plan.build_dir / "build.log"
    process.run(
        plan.command(idf),
        log=log,
        what=f"idf.py build of app '{plan.app}'",
        env=idf.environment(os.environ),
    )
    _check_config(plan)
    code = _code(plan)
    flasher = read_flasher_args(plan.build_dir)
    images, contents = _images(plan, flasher)
    if key is not None:
        images, contents = _signed(plan, key, images, contents)
    app = _check_images(plan, images, contents)
    # Like idf.py's own outputs (umask 077): the image holds the Wi-Fi password, if any.
    secret = bool(plan.secret_options)
    settings = _flash_settings(flasher)
    merged = plan.build_dir / "merged.bin"
    write_if_changed(merged, _merged(plan, settings, images), mode=0o600 if secret else 0o644)
    ca_sha256 = (
        hashlib.sha256(plan.ca_dest.read_bytes()).hexdigest() if plan.ca_dest is not None else None
    )
    summary = AppSummary(
        app=plan.app,
        target=plan.target,
        app_image=app,
        images=tuple(images),
        flash_settings=settings,
        esptool_args=_esptool_args(flasher),
        merged=merged,
        ota_url=plan.ota_url,
        ca_sha256=ca_sha256,
        ca_file=plan.ca_dest,
        holds_secret=secret,
        code=code,
    )
    outputs.write(plan.build_dir / "app.json", summary)
    state = _state(plan)
    state["built_sdkconfig"] = _sdkconfig_digest(plan)
    write_if_changed(_state_file(plan), json.dumps(state))
    print(f"app '{plan.app}': {app.name} {app.version} verified, {app.size} bytes")


def _code(plan: BuildPlan) -> app_code.AppCode | None:
    """What the app's code does, read under the configuration it was just built with; each
    thing a board would do that the user may not expect is said here, once per build."""
    try:
        config = json.loads((plan.build_dir / "config" / "sdkconfig.json").read_text("utf-8"))
        config = app_code.with_old_names(config, kconfig.build_renames(plan.build_dir) or {})
        files = idfapp.read_app(plan.project_dir)
    except (OSError, ValueError):
        return None  # the took-effect check has already said what the build lacks
    overrides = app_code.Overrides.from_json(dict(plan.code_overrides))
    code = app_code.scan(
        plan.project_dir,
        config,
        examples_common=files.uses_examples_common,
        overrides=overrides,
        app=plan.app,
        ca_cert=plan.ca_cert,
    )
    for note in app_code.warnings(
        code,
        app=plan.app,
        client=plan.ota_url is not None,
        encrypt=plan.decrypt_key_dest is not None,
        delta=plan.delta,
    ):
        warn(note)
    return code


def _sdkconfig_digest(plan: BuildPlan) -> str | None:
    return (
        hashlib.sha256(plan.sdkconfig.read_bytes()).hexdigest() if plan.sdkconfig.exists() else None
    )


def config_unchanged(plan: BuildPlan) -> bool:
    """The sdkconfig is the one the last build used (menuconfig changes it: doit's uptodate)."""
    built = _state(plan).get("built_sdkconfig")
    return bool(built) and built == _sdkconfig_digest(plan)


def outputs_intact(summary: Path) -> bool:
    """The images app.json lists are still there with the bytes the build recorded (SHA-256,
    never just the size: an image re-signed after the build is not this build's); a summary of
    another schema is out of date too (doit's uptodate check)."""
    try:
        images = outputs.read(summary).images
    except (OSError, ToolError):
        return False
    for image in images:
        try:
            data = image.file.read_bytes()
        except OSError:
            return False
        if hashlib.sha256(data).hexdigest() != image.sha256:
            warn(
                f"{image.file} is not the image `doit build` made (its SHA-256 differs from the "
                f"one in {summary}); building it again"
            )
            return False
    return True


def menuconfig(plan: BuildPlan) -> None:
    """idf.py menuconfig on the app's generated sdkconfig, then the project.yaml lines that would
    keep the changes (the sdkconfig itself is regenerated whenever project.yaml changes)."""
    idf = find_idf(os.environ, plan.idf_version)
    prepare(plan)
    before = _written_config(plan)
    code = process.interactive(plan.command(idf, "menuconfig"), env=idf.environment(os.environ))
    if code != 0:
        raise ToolError(
            f"idf.py menuconfig for app '{plan.app}' failed (exit {code})", returncode=code
        )
    after = _written_config(plan)
    lines = sdkconfig.yaml_lines(plan.app, before, after)
    if not lines:
        print(f"no option of app '{plan.app}' changed")
        return
    print("These changes last only until project.yaml changes; to keep them, add to project.yaml:")
    print("\n".join(lines))
