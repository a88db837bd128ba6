"""Building an app with idf.py, one action per step of build:<app> (graph.py wires them through
files): configure, idf.py build, checks, sign, merge, summary.

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
from ..idf import app_code, app_folder, esp_image, esptool_log, signing
from ..idf.idftool import IdfTool, find_idf
from ..idf.kconfig import kconfgen, sdkconfig
from ..tls import certs
from . import outputs, signing_key, took_effect
from .build_plan import BuildPlan, idf_identity, plan, plans
from .outputs import AppSummary, BuiltImages, Checked, EsptoolArgs, FlashSettings, ImageEntry
from .staging import app_sources, stage

if TYPE_CHECKING:
    from ..idf.esp_image import AppImage

__all__ = [
    "BuildPlan",
    "check",
    "configure",
    "idf_identity",
    "made_files",
    "merge",
    "plan",
    "plans",
    "prepare",
    "read_flasher_args",
    "run_idf",
    "sign",
    "summarize",
    "unmet_options",
]


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


def _written_config(plan: BuildPlan) -> dict[str, str]:
    """The app's sdkconfig as written, {} before the first configure."""
    return sdkconfig.parse(plan.sdkconfig.read_text()) if plan.sdkconfig.exists() else {}


def _made_for_another(plan: BuildPlan) -> str | None:
    """Why the build dir cannot be reused: ESP-IDF's own record of what configured it
    (project_description.json, docs/esp-idf.md §5.5) names another target or IDF_PATH."""
    try:
        made = json.loads((plan.build_dir / "project_description.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(made, dict):
        return None
    target, idf_path = str(made.get("target") or ""), str(made.get("idf_path") or "")
    if target and target != plan.target:
        return f"target changed: {target} -> {plan.target}"
    if (
        plan.idf_root is not None
        and idf_path
        and Path(idf_path).resolve() != plan.idf_root.resolve()
    ):
        return f"ESP-IDF changed: {Path(idf_path).resolve()} -> {plan.idf}"
    return None


def configure(plan: BuildPlan) -> None:
    """build:<app>:config (runs when the defaults, the target or ESP-IDF change): drop the
    sdkconfig, which ESP-IDF would otherwise keep (it applies defaults only to options an
    existing sdkconfig lacks, §5.4), and write what the next one is made from; a build dir
    made for another target or IDF_PATH is emptied (CMake's cache for another target makes
    idf.py stop)."""
    reason = _made_for_another(plan)
    if reason is not None:
        print(f"app '{plan.app}': rebuilding, {reason}")
        shutil.rmtree(plan.build_dir)
    plan.sdkconfig.unlink(missing_ok=True)
    layers = [
        [str(path), hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None]
        for path in plan.defaults_layers
    ]
    made_from = {"target": plan.target, "idf": plan.idf, "defaults": layers}
    plan.build_dir.mkdir(parents=True, exist_ok=True)
    write_if_changed(plan.sdkconfig_inputs, json.dumps(made_from, indent=2) + "\n")


def prepare(plan: BuildPlan) -> None:
    """Stage the sources, place the CA and the decryption key, and make the build dir."""
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
    plan.build_dir.mkdir(parents=True, exist_ok=True)


def run_idf(plan: BuildPlan, idf: IdfTool | None = None) -> None:
    """build:<app>:idf — stage the app, run idf.py build, and list what it made with each
    image's SHA-256 in build/<app>/images.json (the file the later steps depend on)."""
    idf = idf or find_idf(os.environ, plan.idf_version)
    prepare(plan)
    _drop_replaced(plan)
    process.run(
        plan.command(idf),
        log=plan.build_dir / "build.log",
        what=f"idf.py build of app '{plan.app}'",
        env=idf.environment(os.environ),
    )
    flasher = read_flasher_args(plan.build_dir)
    built = BuiltImages(
        images=tuple(_images(plan, flasher)),
        flash_settings=_flash_settings(flasher),
        esptool_args=_esptool_args(flasher),
    )
    outputs.write_built(plan.built_images, built)


def _drop_replaced(plan: BuildPlan) -> None:
    """Remove each image that is not the one idf.py made last time: ninja goes by mtimes, so it
    would keep a replaced file that is newer than its inputs, but it makes a missing one again."""
    try:
        built = outputs.read_built(plan.built_images)
    except ToolError:
        return
    for image in built.images:
        try:
            replaced = hashlib.sha256(image.file.read_bytes()).hexdigest() != image.sha256
        except OSError:
            continue
        if replaced:
            print(f"app '{plan.app}': {image.file} is not the image idf.py made; making it again")
            image.file.unlink()


def made_files(plan: BuildPlan) -> list[Path]:
    """What build:<app>:idf leaves that no plan can name in advance: the staged copy idf.py
    compiled (an edit there is undone by building again) and the images flasher_args.json
    names. doit records their SHA-256 with the step's targets (wiring.recorded)."""
    staged = app_sources(plan.project_dir, exclude=plan.placed) if plan.project_dir.is_dir() else []
    try:
        images = [image.file for image in outputs.read_built(plan.built_images).images]
    except ToolError:
        images = []
    return [*staged, *images]


def _check_config(plan: BuildPlan) -> tuple[dict[str, Any], Mapping[str, str] | None]:
    """The built configuration (config/sdkconfig.json) and ESP-IDF's renames, once each has been
    checked against every option project.yaml asked for."""
    path = plan.build_dir / "config" / "sdkconfig.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError) as error:
        raise ToolError(f"{path} cannot be read after the build ({error})") from None
    try:
        menus = json.loads((path.parent / "kconfig_menus.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        menus = None  # an idf.py that does not write it: the causes stay generic
    renames = kconfgen.build_renames(plan.build_dir)
    minimal = took_effect.minimal_build(plan.project_dir)
    problems = unmet_options(
        plan, config, _written_config(plan), menus, renames, minimal_build=minimal
    )
    if problems:
        raise ToolError(
            f"app '{plan.app}': {len(problems)} option(s) did not take effect: "
            + "; ".join(problems)
        )
    return config, renames


def _images(plan: BuildPlan, flasher: Mapping[str, object]) -> list[ImageEntry]:
    """Each flash image flasher_args.json names, with its size and SHA-256."""
    images: list[ImageEntry] = []
    for role in _ROLES:
        entry = flasher.get(role)
        if not isinstance(entry, dict):
            continue
        path = plan.build_dir / str(entry["file"])
        data = path.read_bytes()
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
    return images


def _read_image(entry: ImageEntry) -> bytes:
    """An image's bytes, as long as they are the ones its step recorded."""
    try:
        data = entry.file.read_bytes()
    except OSError:
        raise ToolError(f"{entry.file} is missing; run doit build") from None
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise ToolError(
            f"{entry.file} is not the image idf.py made (its SHA-256 differs from the one "
            "recorded after the build); run doit build again"
        )
    return data


def _app_entry(plan: BuildPlan, images: Sequence[ImageEntry]) -> ImageEntry:
    entry = next((image for image in images if image.role == "app"), None)
    if entry is None:
        raise ToolError(f"{plan.build_dir / 'flasher_args.json'} names no app image")
    return entry


def _check_app(plan: BuildPlan, entry: ImageEntry, data: bytes, *, fit: bool) -> AppImage:
    """Verify the app with esptool and its version; with `fit`, that it fits its slots."""
    app = esp_image.read_app(data, plan.target, name=entry.file.name)
    if app.version != plan.version:
        raise ToolError(
            f"{entry.file.name} carries version '{app.version}', project.yaml asks for "
            f"'{plan.version}' (apps.{plan.app}.version); a CMakeLists.txt may set PROJECT_VER"
        )
    note = esp_image.fit_warning(app, plan.slots) if fit else None
    if note:
        warn(note)
    return app


def check(plan: BuildPlan) -> None:
    """build:<app>:checks — the options project.yaml asked for took effect, the bootloader and
    the app verify, the app carries its version; what its code does goes to checked.json."""
    config, renames = _check_config(plan)
    built = outputs.read_built(plan.built_images)
    boot = built.image("bootloader")
    if boot is not None:
        esp_image.read_bootloader(_read_image(boot), plan.target)
    entry = _app_entry(plan, built.images)
    _check_app(plan, entry, _read_image(entry), fit=False)
    outputs.write_checked(plan.checked, Checked(code=_code(plan, config, renames)))


def sign(plan: BuildPlan) -> None:
    """build:<app>:sign — sign the app into build/<app>/<app>-signed.bin with the key here or
    ota.sign_command, and verify it with espsecure against the public key."""
    if plan.signing is None:
        return
    key = signing_key.load(plan.signing, os.environ)
    data = key.sign(_read_image(_app_entry(plan, outputs.read_built(plan.built_images).images)))
    try:
        signing.verify(data, key.public_pem, plan.signed_app.name)
    except signing.SignatureError as error:
        raise ToolError(f"app '{plan.app}': {error}") from None
    write_if_changed(plan.signed_app, data, mode=0o600 if plan.secret_options else 0o644)


def _final(plan: BuildPlan) -> tuple[BuiltImages, dict[str, bytes]]:
    """The images as delivered (the signed app in place of idf.py's), and their bytes by role."""
    built = outputs.read_built(plan.built_images)
    images = list(built.images)
    if plan.signing is not None:
        entry = _app_entry(plan, images)
        try:
            data = plan.signed_app.read_bytes()
        except OSError:
            raise ToolError(f"{plan.signed_app} is missing; run doit build") from None
        signed = dataclasses.replace(
            entry, file=plan.signed_app, size=len(data), sha256=hashlib.sha256(data).hexdigest()
        )
        images = [signed if image is entry else image for image in images]
    contents = {image.role: _read_image(image) for image in images}
    return dataclasses.replace(built, images=tuple(images)), contents


def merge(plan: BuildPlan) -> None:
    """build:<app>:merge — one image for factory programming (esptool merge-bin), header
    settings from the build: build/<app>/merged.bin."""
    from esptool.cmds import merge_bin

    built, _ = _final(plan)
    settings = built.flash_settings
    with esptool_log.quiet_esptool(esptool_log.Progress()):  # its notes are not news here
        data = merge_bin(
            [(image.offset, str(image.file)) for image in built.images],
            plan.target,
            output=None,
            flash_mode=settings.flash_mode or "keep",
            flash_freq=settings.flash_freq or "keep",
            flash_size=settings.flash_size or "keep",
        )
    # Like idf.py's own outputs (umask 077): the image holds the Wi-Fi password, if any.
    write_if_changed(plan.merged, bytes(data or b""), mode=0o600 if plan.secret_options else 0o644)


def summarize(plan: BuildPlan) -> None:
    """build:<app> — build/<app>/app.json, what flash, serve, release and the manifest read."""
    built, contents = _final(plan)
    app = _check_app(plan, _app_entry(plan, built.images), contents["app"], fit=True)
    ca_sha256 = (
        hashlib.sha256(plan.ca_dest.read_bytes()).hexdigest() if plan.ca_dest is not None else None
    )
    summary = AppSummary(
        app=plan.app,
        target=plan.target,
        app_image=app,
        images=built.images,
        flash_settings=built.flash_settings,
        esptool_args=built.esptool_args,
        merged=plan.merged,
        ota_url=plan.ota_url,
        ca_sha256=ca_sha256,
        ca_file=plan.ca_dest,
        holds_secret=bool(plan.secret_options),
        code=outputs.read_checked(plan.checked).code,
    )
    outputs.write(plan.summary, summary)
    print(f"app '{plan.app}': {app.name} {app.version} verified, {app.size} bytes")


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


def _code(
    plan: BuildPlan, built_config: Mapping[str, Any], renames: Mapping[str, str] | None
) -> app_code.AppCode | None:
    """What the app's code does, read under the configuration it was just built with; each
    thing a board would do that the user may not expect is said here, once per build."""
    try:
        files = app_folder.read_app(plan.project_dir)
    except (OSError, ValueError):
        return None  # the took-effect check has already said what the build lacks
    config = app_code.with_old_names(built_config, renames or {})
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
