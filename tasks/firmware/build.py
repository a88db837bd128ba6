"""Building an app with idf.py: finding ESP-IDF, the command line, staging, and the one runner.

The command line and outputs follow ESP-IDF v5.3's idf.py contract (facts §5); production code
relies on nothing a real idf.py does not document, so any faithful stand-in works too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import process
from ..errors import ToolError, warn
from ..files import write_if_changed
from ..idf import images as image_checks
from ..idf import kconfig, sdkconfig, signing
from ..idf.idftool import IdfTool, find_idf
from ..idf.partitions import Partition
from ..tls import certs
from . import defaults, took_effect
from .staging import stage

if TYPE_CHECKING:
    from ..config.model import App, Project
    from ..paths import Paths
    from .defaults import SdkconfigPlan

__all__ = [
    "BuildPlan",
    "app_image",
    "build_app",
    "config_unchanged",
    "idf_identity",
    "outputs_intact",
    "plan",
    "plans",
    "prepare",
    "read_flasher_args",
    "read_summary",
    "unmet_options",
]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class BuildPlan:
    """Everything one app's build reads; the build task fingerprints exactly this."""

    app: str
    target: str
    idf_version: str  # project.yaml's major.minor
    # Which ESP-IDF builds it (release with patch, and IDF_PATH): another one rebuilds.
    idf: str
    version: str  # PROJECT_VER the image must carry
    source: Path  # the app project as the user named it
    project_root: Path  # the folder holding project.yaml
    project_dir: Path  # where idf.py builds it from: the staged copy
    build_dir: Path
    sdkconfig: Path
    defaults: tuple[Path, ...]  # SDKCONFIG_DEFAULTS, in order
    ca_source: Path | None  # certs/ca_cert.pem, for ota_client apps
    ca_dest: Path | None  # where the app embeds it
    options: tuple[tuple[str, str, str], ...]  # (CONFIG_NAME, sdkconfig value, where from)
    secret_options: tuple[str, ...]
    slots: tuple[Partition, ...]  # the app partitions the image must fit
    ota_url: str | None
    signing_key: Path | None = None  # ota.sign: espsecure signs the app after the build

    def to_json(self) -> dict[str, object]:
        """The fingerprint doit stores and `doit info` prints: secrets only as a digest."""
        data: dict[str, object] = {
            name: [list(item) if isinstance(item, tuple) else str(item) for item in value]
            if isinstance(value, tuple)
            else (str(value) if isinstance(value, Path) else value)
            for name, value in (
                (field, getattr(self, field)) for field in self.__dataclass_fields__
            )
        }
        data["options"] = [
            [name, sdkconfig.redacted(name, value, self.secret_options), origin]
            for name, value, origin in self.options
        ]
        data["slots"] = [[slot.name, slot.offset, slot.size] for slot in self.slots]
        return data

    def __repr__(self) -> str:
        # `doit info` prints action arguments: never the option values (the Wi-Fi password).
        return f"BuildPlan(app={self.app!r}, target={self.target!r}, source='{self.source}')"

    def command(self, idf: IdfTool, action: str = "build") -> list[str]:
        """idf.py's command line: never set-target, which would wipe the build dir."""
        return [
            *idf.command,
            "-C",
            str(self.project_dir),
            "-B",
            str(self.build_dir),
            "-D",
            f"SDKCONFIG={self.sdkconfig}",
            "-D",
            "SDKCONFIG_DEFAULTS=" + ";".join(str(path) for path in self.defaults),
            "-D",
            f"IDF_TARGET={self.target}",
            action,
        ]


def idf_identity(idf_root: Path | None) -> str:
    """The ESP-IDF a build uses, as its fingerprint and messages name it."""
    if idf_root is None:
        return "no ESP-IDF (the idf.py stand-in)"
    version = kconfig.idf_version(idf_root) or "of unknown version"
    return f"ESP-IDF {version} at {idf_root.resolve()}"


def defaults_digest(plan: BuildPlan) -> str:
    """What the sdkconfig was made from; when it changes, the old sdkconfig is stale (§5.4)."""
    digest = hashlib.sha256(plan.target.encode())
    for path in plan.defaults:
        # ESP-IDF applies F.<target> right after each defaults file F (§5.4).
        for layer in (path, path.with_name(f"{path.name}.{plan.target}")):
            digest.update(layer.read_bytes() if layer.exists() else b"")
    return digest.hexdigest()


def read_flasher_args(build_dir: Path) -> dict[str, object]:
    """build/<app>/flasher_args.json (facts §5.5); missing means the build did not finish."""
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
    keep = [plan.ca_dest] if plan.ca_dest else []
    stage(plan.source, plan.project_dir, keep=keep, project_dir=plan.project_root)
    if plan.ca_source is not None and plan.ca_dest is not None:
        certs.place_ca(plan.ca_source, plan.ca_dest)
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
) -> tuple[list[dict[str, object]], dict[str, bytes]]:
    """Each flash image flasher_args.json names (for app.json), and its bytes by role."""
    images: list[dict[str, object]] = []
    contents: dict[str, bytes] = {}
    for role in _ROLES:
        entry = flasher.get(role)
        if not isinstance(entry, dict):
            continue
        path = plan.build_dir / str(entry["file"])
        data = contents[role] = path.read_bytes()
        images.append(
            {
                "role": role,
                "offset": str(entry["offset"]),
                "file": str(path),
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "encrypted": str(entry.get("encrypted", "false")),
            }
        )
    return images, contents


def _check_images(
    plan: BuildPlan, images: Sequence[Mapping[str, object]], contents: Mapping[str, bytes]
) -> dict[str, object]:
    """Verify bootloader and app with esptool; the app must fit its slots. Returns the app facts."""
    if "app" not in contents:
        raise ToolError(f"{plan.build_dir / 'flasher_args.json'} names no app image")
    app_name = app_image(images).name
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
    return app.to_json()


def _signed(
    plan: BuildPlan, key: Path, images: list[dict[str, object]], contents: dict[str, bytes]
) -> tuple[list[dict[str, object]], dict[str, bytes]]:
    """Sign the app with espsecure into <name>-signed.bin (idf.py's own .bin stays unsigned, as
    ninja made it), verify the signature, and list the signed file instead."""
    entry = next((image for image in images if image["role"] == "app"), None)
    if entry is None:
        return images, contents
    unsigned = Path(str(entry["file"]))
    target = unsigned.with_name(f"{unsigned.stem}-signed.bin")
    data = signing.sign(key, contents["app"])
    signing.verify(data, key.read_bytes(), target.name)
    write_if_changed(target, data, mode=0o600 if plan.secret_options else 0o644)
    signed = {
        **entry,
        "file": str(target),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return [signed if image is entry else image for image in images], {**contents, "app": data}


def _merged(
    plan: BuildPlan, flasher: Mapping[str, object], images: Sequence[Mapping[str, object]]
) -> bytes:
    """One image for factory programming (esptool merge-bin), header settings from the build."""
    from esptool.cmds import merge_bin

    settings = flasher.get("flash_settings")
    settings = settings if isinstance(settings, dict) else {}
    data = merge_bin(
        [(int(str(image["offset"]), 16), str(image["file"])) for image in images],
        plan.target,
        output=None,
        flash_mode=str(settings.get("flash_mode", "keep")),
        flash_freq=str(settings.get("flash_freq", "keep")),
        flash_size=str(settings.get("flash_size", "keep")),
    )
    return bytes(data or b"")


def build_app(plan: BuildPlan, idf: IdfTool | None = None) -> None:
    """doit build:<app> — stage, idf.py build, check the configuration and the images, and
    write build/<app>/app.json (what flash, serve and the manifest read)."""
    idf = idf or find_idf(os.environ, plan.idf_version)
    prepare(plan)
    process.run(
        plan.command(idf),
        log=plan.build_dir / "build.log",
        what=f"idf.py build of app '{plan.app}'",
    )
    _check_config(plan)
    flasher = read_flasher_args(plan.build_dir)
    images, contents = _images(plan, flasher)
    if plan.signing_key is not None:
        images, contents = _signed(plan, plan.signing_key, images, contents)
    app = _check_images(plan, images, contents)
    # Like idf.py's own outputs (umask 077): the image holds the Wi-Fi password, if any.
    secret = bool(plan.secret_options)
    merged = _merged(plan, flasher, images)
    write_if_changed(plan.build_dir / "merged.bin", merged, mode=0o600 if secret else 0o644)
    ca_sha256 = (
        hashlib.sha256(plan.ca_dest.read_bytes()).hexdigest() if plan.ca_dest is not None else None
    )
    summary = {
        "app": plan.app,
        "version": app["version"],
        "project_name": app["project_name"],
        "idf_version": app["idf_version"],
        "target": plan.target,
        "ota_url": plan.ota_url,
        "ca_sha256": ca_sha256,
        "app_image": app,
        "images": images,
        "flash_settings": flasher.get("flash_settings"),
        "extra_esptool_args": flasher.get("extra_esptool_args"),
        "merged": str(plan.build_dir / "merged.bin"),
        "ca_file": str(plan.ca_dest) if plan.ca_dest is not None else None,
        "synthetic": idf.synthetic,
        "holds_secret": secret,
    }
    write_if_changed(plan.build_dir / "app.json", json.dumps(summary, indent=2) + "\n")
    state = _state(plan)
    state["built_sdkconfig"] = _sdkconfig_digest(plan)
    write_if_changed(_state_file(plan), json.dumps(state))
    print(f"app '{plan.app}': {app['name']} {app['version']} verified, {app['size']} bytes")


def plan(
    project: Project,
    app: App,
    options: SdkconfigPlan,
    *,
    paths: Paths,
    idf_root: Path | None,
    signing_key: Path | None = None,
) -> BuildPlan:
    """The build of `app`: where its sources are, what it is built with, what it must fit."""
    if app.in_idf:
        source = (idf_root or Path("$IDF_PATH")) / app.idf_subpath
    else:
        source = (project.project_dir / app.path).resolve()
    # Every app is built from its staged copy: neither ESP-IDF's tree nor the app's own folder
    # (its sdkconfig, build/, embedded CA) is ever written to.
    project_dir = paths.staged(app.name)
    own_defaults = project_dir / "sdkconfig.defaults"
    generated = paths.sdkconfig_defaults(app.name)
    defaults = (
        (own_defaults, generated) if (source / "sdkconfig.defaults").exists() else (generated,)
    )
    client = app.ota_client and project.ota is not None
    secret = options.secret_options
    return BuildPlan(
        app=app.name,
        target=project.target,
        idf_version=project.idf.version,
        idf=idf_identity(idf_root),
        version=app.version,
        source=source,
        project_root=project.project_dir,
        project_dir=project_dir,
        build_dir=paths.app_build(app.name),
        sdkconfig=paths.app_build(app.name) / "sdkconfig",
        defaults=defaults,
        ca_source=paths.certs / "ca_cert.pem" if client else None,
        ca_dest=project_dir / app.ca_cert if client else None,
        options=tuple(
            (name, value, title) for title, items in options.groups for name, value in items
        ),
        secret_options=secret,
        slots=_slots(project, app),
        ota_url=project.ota.url_text if client and project.ota is not None else None,
        signing_key=signing_key,
    )


def plans(
    project: Project, *, paths: Paths, idf_root: Path | None, signing_key: Path | None = None
) -> list[BuildPlan]:
    """One BuildPlan per app in project.yaml, in order."""
    return [
        plan(
            project,
            app,
            defaults.plan(project, app, partitions_csv=paths.partitions_csv),
            paths=paths,
            idf_root=idf_root,
            signing_key=signing_key,
        )
        for app in project.apps
    ]


def _slots(project: Project, app: App) -> tuple[Partition, ...]:
    table = project.table
    chosen: list[Partition] = []
    if app.name == project.flash_app:
        # idf.py app-flash writes the "boot default": factory, else the first OTA slot.
        boot = table.factory or (table.ota_slots[0] if table.ota_slots else None)
        chosen += [boot] if boot else []
    if project.ota is not None and app.name == project.ota.image:
        chosen += table.ota_slots
    if not chosen:  # check_sizes.py checks every app partition
        chosen = [p for p in table.partitions if p.type == 0]
    return tuple({p.name: p for p in chosen}.values())


def _sdkconfig_digest(plan: BuildPlan) -> str | None:
    return (
        hashlib.sha256(plan.sdkconfig.read_bytes()).hexdigest() if plan.sdkconfig.exists() else None
    )


def config_unchanged(plan: BuildPlan) -> bool:
    """The sdkconfig is the one the last build used (menuconfig changes it: doit's uptodate)."""
    built = _state(plan).get("built_sdkconfig")
    return bool(built) and built == _sdkconfig_digest(plan)


def read_summary(path: Path) -> dict[str, Any]:
    """build/<app>/app.json, which `doit build` writes; flash and the rehearsal read it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToolError(f"{path} is missing; run doit build") from None
    except (OSError, ValueError) as error:
        raise ToolError(f"{path} cannot be read ({error}); run doit build") from None
    if not isinstance(data, dict):
        raise ToolError(f"{path} is not a JSON object; run doit build")
    return data


def app_image(images: Sequence[Mapping[str, object]]) -> Path:
    """The app's file among app.json's images (the one flashed, served or tampered with)."""
    return Path(next(str(image["file"]) for image in images if image["role"] == "app"))


def outputs_intact(summary: Path) -> bool:
    """The images app.json lists are still there with their sizes (doit's uptodate check)."""
    try:
        images = json.loads(summary.read_text(encoding="utf-8"))["images"]
        return all(Path(image["file"]).stat().st_size == image["size"] for image in images)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def menuconfig(plan: BuildPlan) -> None:
    """idf.py menuconfig on the app's generated sdkconfig, then the project.yaml lines that would
    keep the changes (the sdkconfig itself is regenerated whenever project.yaml changes)."""
    idf = find_idf(os.environ, plan.idf_version)
    prepare(plan)
    before = _written_config(plan)
    code = process.interactive(plan.command(idf, "menuconfig"))
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
