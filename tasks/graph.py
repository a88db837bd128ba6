"""The whole task graph on one screen: every doit task creator, in pipeline order, plus DOIT_CONFIG.

Creators only wire plans to actions: files connect tasks (file_dep/targets), and the plan an
action receives is the payload its config_changed fingerprints.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from doit.exceptions import TaskFailed

from .config import hosts
from .config.model import App, Project
from .device import board, flash
from .errors import ProjectError, warn
from .firmware import (
    build_plan,
    defaults,
    encryption_key,
    signing_key,
    staging,
)
from .idf import idftool
from .paths import DEP_FILE, TEMPLATES, Paths, cert_files
from .release import releasing
from .serve import publish, serving
from .tls import certs
from .wiring import (
    PORT_OPTION,
    baud_option,
    fingerprint,
    load_project,
    planning,
    project_text,
    recorded,
    rehearsal_asked,
    release_lock,
    run,
    slot_option,
    standin_requested,
)

if TYPE_CHECKING:
    from .firmware import render
    from .firmware.build_plan import BuildPlan
    from .idf.partition.rules import PartitionTable

    # The rehearsal is an optional part (the `rehearse` extra): imported inside its creators only.
    from .rehearsal import rehearse

# What only an action needs is imported in the action (render, repro, the servers, kconfgen's
# runs, the build's steps): `doit list` and a no-op run pay for the planners alone (bench/noop.py).
# doit orders the creators by line, reading each one's source (inspect.getsourcelines) in every
# run: a task_* creator is its docstring and a call; the body is the _task_* right after it.

__all__ = [
    "DOIT_CONFIG",
    "load_project",
    "release_lock",
    "task_boot",
    "task_build",
    "task_certs",
    "task_encryption_key",
    "task_flash",
    "task_host",
    "task_kconfig",
    "task_menuconfig",
    "task_monitor",
    "task_publish",
    "task_rehearse",
    "task_release",
    "task_render",
    "task_reproduce",
    "task_rotate_ca",
    "task_rotate_signing_key",
    "task_serve",
    "task_signing_key",
    "task_status",
]

# sqlite3 is the backend that survives two doit processes at once. Its file sits next to
# project.yaml because doit opens it before any task runs, when build/ may not exist yet.
DOIT_CONFIG: dict[str, Any] = {
    "backend": "sqlite3",
    "dep_file": DEP_FILE,
    "default_tasks": ["render"],
    "minversion": "0.37.0",
    "action_string_formatting": "new",
}


@dataclasses.dataclass(frozen=True, slots=True)
class _Facts:
    """What an action reads beyond its plan, when it runs: the files the host and kconfig tasks
    hand over (build/facts/host.json for an `auto` host; build/kconfig/<app>.facts.json). Plans
    are made before those tasks run, from the project as loaded; the action completes them."""

    project: Project  # as loaded (with the rehearsal's next app where it has one)
    host_file: Path | None
    kconfig: tuple[tuple[str, Path], ...]  # app -> its facts file

    @property
    def host_deps(self) -> list[Path]:
        return [self.host_file] if self.host_file is not None else []

    @property
    def deps(self) -> list[Path]:
        return [*self.host_deps, *{path: None for _, path in self.kconfig}]

    def of(self, app: str) -> _Facts:
        """Only what `app`'s task reads: another app's Kconfig changing does not make it stale."""
        own = tuple((name, path) for name, path in self.kconfig if name == app)
        return dataclasses.replace(self, kconfig=own)

    def at_host(self) -> Project:
        """The project with the URL's host as the host task found it."""
        project = self.project
        if self.host_file is not None and project.ota is not None:
            found = hosts.read(self.host_file).host
            project = dataclasses.replace(project, ota=dataclasses.replace(project.ota, host=found))
        return project

    def loaded(self) -> Project:
        """The project with the URL's host and each app's Kconfig as the tasks found them."""
        from .firmware import kconfig_source

        read: dict[Path, Any] = {}
        for _, path in self.kconfig:
            if path not in read:
                read[path] = kconfig_source.read(path).kconfig
        kconfig = tuple((app, read[path]) for app, path in self.kconfig if read[path] is not None)
        return dataclasses.replace(self.at_host(), kconfig=kconfig)

    def certs(self, plan: certs.CertPlan) -> certs.CertPlan:
        ota = self.at_host().ota
        return plan if ota is None else dataclasses.replace(plan, host=ota.host)

    def serve(self, plan: serving.ServePlan) -> serving.ServePlan:
        ota = self.at_host().ota
        if ota is None:
            return plan
        return dataclasses.replace(plan, host=ota.host, url=ota.url_text)

    def build(self, plan: BuildPlan) -> BuildPlan:
        """The build's options typed by the app's Kconfig, and the URL with the host found."""
        if not self.kconfig and self.host_file is None:
            return plan  # nothing found after planning: the plan is complete
        project = self.loaded()
        if not any(app.name == plan.app for app in project.apps):
            return plan
        app = project.app(plan.app)
        csv = Paths(project.project_dir).partitions_csv
        options = defaults.plan(project, app, partitions_csv=csv)
        return dataclasses.replace(
            plan,
            options=tuple(
                (name, value, title) for title, items in options.groups for name, value in items
            ),
            secret_options=options.secret_options,
            ota_url=project.ota.url_text if plan.ota_url and project.ota else plan.ota_url,
        )


def _facts(project: Project, planned: Project | None = None) -> _Facts:
    """The facts tasks' files for `project` as loaded; `planned` is the project the task's plans
    came from where it is another (the rehearsal's, with its next app)."""
    ota = project.ota
    auto = ota is not None and ota.host == hosts.AUTO
    return _Facts(
        project=planned or project,
        host_file=Paths(project.project_dir).server_host if auto else None,
        kconfig=tuple(_facts_files(project).items()),
    )


def _found_host(file: Path) -> dict[str, str]:
    """The host task's action: this machine's LAN address (a UDP socket's route; no packet)."""
    found, warning = hosts.resolve_host(hosts.AUTO, {}, lan=hosts.lan_address)
    if warning:
        warn(warning)
    hosts.write(hosts.ServerHost(host=found), file)
    return {"host": found}


def _host_unchanged(task: Any, values: dict[str, object]) -> bool:
    return values.get("host") == hosts.resolve_host(hosts.AUTO, {}, lan=hosts.lan_address)[0]


def task_host() -> dict[str, Any]:
    """Find the address boards reach this machine at, for the OTA URL's host `auto`."""
    return _task_host()


def _task_host() -> dict[str, Any]:
    file = _facts(load_project()).host_file
    if file is None:
        return {"actions": [], "doc": "the OTA URL (or $OTA_HOST) names its host; none to find"}
    return recorded(
        {
            "actions": [(_found_host, [file])],
            "targets": [file],
            # Checked on every run: the address changes with the network (DHCP, another Wi-Fi).
            "uptodate": [_host_unchanged],
            "clean": True,
        }
    )


def _facts_files(project: Project) -> dict[str, Path]:
    """Each app's build/kconfig/<app>.facts.json, where an ESP-IDF is here to evaluate the apps'
    Kconfig (none without one: the options are then checked after the build). The rehearsal's
    next version of the flashed app has the flashed app's Kconfig."""
    idf_root = idftool.idf_path(os.environ)
    if idf_root is None or not (idf_root / "Kconfig").is_file():
        return {}
    paths = Paths(project.project_dir)
    own = {app.name: paths.kconfig_facts(app.name) for app in project.apps}
    rehearsed = _rehearsed(project)
    if rehearsed.ota is not None and rehearsed.ota.image not in own:
        own[rehearsed.ota.image] = own[project.flash_app]
    return own


def _kconfig_unchanged(task: Any, values: dict[str, object], project: Project) -> bool:
    from .firmware import kconfig_source

    return values.get("kconfig_inputs") == kconfig_source.inputs_digest(project, os.environ)


def _evaluate_kconfig(
    project: Project, text: str, facts: dict[str, Path]
) -> dict[str, str] | TaskFailed:
    """doit records the returned inputs' digest for the next up-to-date check."""
    from .firmware import kconfig_source

    try:
        return kconfig_source.evaluate_apps(project, text, facts, os.environ)
    except ProjectError as error:
        return TaskFailed(str(error))


def task_kconfig() -> dict[str, Any]:
    """Evaluate each app's Kconfig with ESP-IDF's kconfgen and check project.yaml's options."""
    return _task_kconfig()


def _task_kconfig() -> dict[str, Any]:
    project = load_project()
    facts = _facts_files(project)
    if not facts:
        return {"actions": [], "doc": "no ESP-IDF here: CONFIG_ options are checked by the build"}
    own = {app.name: facts[app.name] for app in project.apps}
    csv = Paths(project.project_dir).partitions_csv
    payload = {
        "target": project.target,
        "apps": [
            {
                "app": app.name,
                "path": app.path,
                "defaults_files": list(app.defaults_files),
                "options": defaults.plan(project, app, partitions_csv=csv).to_json(),
            }
            for app in project.apps
        ],
        "layout": project.table.to_json(),
    }
    return {
        "actions": [(_evaluate_kconfig, [project, project_text(project.project_dir), own])],
        "targets": list(own.values()),
        "uptodate": [fingerprint(payload), (_kconfig_unchanged, [project])],
        "clean": True,
        "verbosity": 2,
    }


def task_render() -> Iterator[dict[str, Any]]:
    """Render the partition table and each app's sdkconfig.defaults from project.yaml."""
    return _task_render()


def _task_render() -> Iterator[dict[str, Any]]:
    project = load_project()
    paths = Paths(project.project_dir)
    yield recorded(
        {
            "name": "partitions",
            "doc": "build/generated/partitions.csv and partition-table.bin",
            "actions": [
                (
                    _write_partition_table,
                    [project.table, paths.partitions_csv, paths.partition_table_bin],
                )
            ],
            "file_dep": [TEMPLATES / "partitions.csv.j2"],
            "targets": [paths.partitions_csv, paths.partition_table_bin],
            "uptodate": [fingerprint(project.table.to_json())],
            "clean": True,
        }
    )
    # With the rehearsal's own app, where it serves the next version of the flashed one.
    rehearsed = _rehearsed(project)
    facts = _facts(project, rehearsed)
    for app in rehearsed.apps:
        # Without the app's Kconfig (known once the kconfig task ran): what project.yaml decides.
        plan = defaults.plan(rehearsed, app, partitions_csv=paths.partitions_csv)
        target = paths.sdkconfig_defaults(app.name)
        yield recorded(
            {
                "name": f"sdkconfig-{app.name}",
                "doc": f"build/generated/{app.name}.sdkconfig.defaults",
                "actions": [(run, [_render_sdkconfig, facts.of(app.name), app.name, target])],
                "file_dep": [TEMPLATES / "sdkconfig.defaults.j2", *facts.of(app.name).deps],
                "targets": [target],
                "uptodate": [fingerprint(plan.to_json())],
                "clean": True,
            }
        )


def _write_partition_table(table: PartitionTable, csv: Path, binary: Path) -> None:
    from .firmware import render

    render.write_partition_table(table, csv, binary)


def _render_sdkconfig(facts: _Facts, app: str, target: Path) -> None:
    """The app's defaults (with the URL's host as found), typed and named by its Kconfig where
    the kconfig task evaluated it; then, where it did, what the app's code will do under it."""
    from .firmware import render

    project = facts.loaded()
    paths = Paths(project.project_dir)
    chosen = project.app(app)
    render.write_sdkconfig(
        defaults.plan(project, chosen, partitions_csv=paths.partitions_csv), target
    )
    check = _code_check(project, chosen)
    if check is not None:
        render.warn_code(check)


def _code_check(project: Project, app: App) -> render.CodeCheck | None:
    """Where kconfgen has evaluated the app's configuration, render reads its code too."""
    from .firmware import render
    from .idf import app_code

    found = project.kconfig_of(app.name)
    folder = app.folder(project.project_dir, idftool.idf_path(os.environ))
    if found is None or folder is None:
        return None
    return render.CodeCheck(
        app=app.name,
        folder=folder,
        config=app_code.with_old_names(found.values, found.renames),
        overrides=build_plan.code_overrides(app),
        ca_cert=app.ca_cert,
        client=app.ota_client and project.ota is not None,
        encrypt=project.ota is not None and project.ota.encrypt is not None,
        delta=project.ota is not None and project.ota.delta,
    )


def _cert_plan(project: Project) -> certs.CertPlan | None:
    if project.ota is None:
        return None
    with planning():
        return certs.plan(
            project=project.name,
            host=project.ota.host,
            key=project.ota.cert.key,
            days=project.ota.cert.days,
            certs_dir=Paths(project.project_dir).certs,
            env=os.environ,
        )


def _issue_certs(plan: certs.CertPlan, facts: _Facts, *, rotate_ca: bool = False) -> None:
    plan = facts.certs(plan)
    ota = facts.at_host().ota
    print(f"OTA URL {ota.url_text if ota else ''}: server cert for '{plan.host}'")
    print(certs.issue(plan, rotate_ca=rotate_ca))


def _rotate_ca(plan: certs.CertPlan, facts: _Facts) -> None:
    _issue_certs(plan, facts, rotate_ca=True)


def _certs_current(
    task: Any, values: dict[str, object], plan: certs.CertPlan, facts: _Facts
) -> bool:
    """Current until the renewal window the last issue recorded opens, while certs/ holds the
    bytes it left (the `recorded` check); else certs.pending reads the files (cryptography)."""
    window = values.get("certs_current")
    if isinstance(window, list) and len(window) == 2:
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        # ISO 8601 UTC texts of one format order as their times do.
        if window[0] <= now < window[1]:
            return True
    return certs.pending(facts.certs(plan)) is None


def _certs_window(plan: certs.CertPlan) -> dict[str, object]:
    start, end = certs.current_window(plan)
    return {"certs_current": [start.isoformat(), end.isoformat()]}


def _remove_leaf(plan: certs.CertPlan) -> None:
    """`doit clean certs` drops the server cert and key; the CA stays (boards trust it)."""
    where = cert_files(plan.certs_dir)
    for path in (where.server_cert, where.server_key):
        path.unlink(missing_ok=True)


def task_certs() -> dict[str, Any]:
    """Issue the HTTPS server cert for the OTA URL host, signed by the local CA in certs/."""
    return _task_certs()


def _task_certs() -> dict[str, Any]:
    project = load_project()
    plan = _cert_plan(project)
    if plan is None or project.ota is None:  # (the second half only narrows the type)
        return {"actions": [], "doc": "project.yaml has no ota: section; nothing to issue"}
    where = cert_files(plan.certs_dir)
    ci_files = [f for f in (plan.ca_cert_file, plan.ca_key_file) if f is not None]
    facts = _facts(project)
    return recorded(
        {
            "actions": [(run, [_issue_certs, plan, facts]), (_certs_window, [plan])],
            "file_dep": [*ci_files, *facts.host_deps],
            "targets": [where.ca_cert, where.server_cert, where.server_key],
            # A cert that expires within 30 days, or no longer matches its key or CA, is stale
            # even when project.yaml did not change.
            "uptodate": [fingerprint(plan.to_json()), (_certs_current, [plan, facts])],
            "clean": [(_remove_leaf, [plan])],
            "verbosity": 2,
        }
    )


def task_rotate_ca() -> dict[str, Any]:
    """Replace the local CA on purpose (old files kept); boards must be reflashed to trust it."""
    return _task_rotate_ca()


def _task_rotate_ca() -> dict[str, Any]:
    project = load_project()
    plan = _cert_plan(project)
    if plan is None or project.ota is None:
        return {"actions": [], "doc": "project.yaml has no ota: section; no CA to rotate"}
    facts = _facts(project)
    return {
        "basename": "rotate-ca",
        "actions": [(run, [_rotate_ca, plan, facts])],
        "file_dep": facts.host_deps,
        "uptodate": [False],
        "verbosity": 2,
    }


def _signing_plan(project: Project) -> signing_key.SigningPlan | None:
    with planning():
        return signing_key.plan(project, os.environ, Paths(project.project_dir).keys)


def _create_key(plan: signing_key.SigningPlan) -> None:
    print(signing_key.create_key(plan))


def _rotate_key(plan: signing_key.SigningPlan) -> None:
    print(signing_key.rotate(plan))


def _key_ready(plan: signing_key.SigningPlan) -> bool:
    # A missing key or one the loader refuses runs the task, which makes it or says why.
    return signing_key.key_ready(plan, os.environ)


def task_signing_key() -> dict[str, Any]:
    """Make the app-signing key keys/signing_key.pem once (ota.sign); its loss is fatal."""
    return _task_signing_key()


def _task_signing_key() -> dict[str, Any]:
    plan = _signing_plan(load_project())
    if plan is None:
        return {
            "basename": "signing-key",  # one name whether or not the project signs
            "actions": [],
            "doc": "project.yaml has no ota.sign; images are not signed",
        }
    return {
        "basename": "signing-key",
        "actions": [(run, [_create_key, plan])],
        "targets": [] if plan.from_env else [plan.key],
        "uptodate": [fingerprint(plan.to_json()), (_key_ready, [plan])],
        "verbosity": 2,
    }


def task_rotate_signing_key() -> dict[str, Any]:
    """Replace the signing key on purpose (old one kept); boards must be reflashed to take it."""
    return _task_rotate_signing_key()


def _task_rotate_signing_key() -> dict[str, Any]:
    plan = _signing_plan(load_project())
    if plan is None:
        return {
            "basename": "rotate-signing-key",
            "actions": [],
            "doc": "project.yaml has no ota.sign; no key to rotate",
        }
    return {
        "basename": "rotate-signing-key",
        "actions": [(run, [_rotate_key, plan])],
        "uptodate": [False],
        "verbosity": 2,
    }


def _encryption_plan(project: Project) -> encryption_key.EncryptionPlan | None:
    with planning():
        return encryption_key.plan(project, os.environ, Paths(project.project_dir).keys)


def _decrypt_key(project: Project) -> Path | None:
    plan = _encryption_plan(project)
    return plan.key if plan is not None else None


def _create_encryption_key(plan: encryption_key.EncryptionPlan) -> None:
    print(encryption_key.create_key(plan))


def task_encryption_key() -> dict[str, Any]:
    """Make the image-encryption key keys/encryption_key.pem once (ota.encrypt); never served."""
    return _task_encryption_key()


def _task_encryption_key() -> dict[str, Any]:
    plan = _encryption_plan(load_project())
    if plan is None:
        return {
            "basename": "encryption-key",  # one name whether or not the project encrypts
            "actions": [],
            "doc": "project.yaml has no ota.encrypt; images are served plain",
        }
    return {
        "basename": "encryption-key",
        "actions": [(run, [_create_encryption_key, plan])],
        "targets": [] if plan.from_env else [plan.key],
        "uptodate": [fingerprint(plan.to_json()), plan.key.exists()],
        "verbosity": 2,
    }


def _build_step(name: str, *args: Any) -> Any:
    """firmware.build's function `name`, imported only when its action runs: creating the tasks
    (a no-op run, `doit list`) does not import what running them needs."""
    from .firmware import build

    return getattr(build, name)(*args)


def _step(name: str) -> functools.partial[Any]:
    return functools.partial(_build_step, name)


def _write_manifest(project_name: str, root: Path, summaries: list[Path], out: Path) -> None:
    from .firmware import manifest

    manifest.write(project_name, root, summaries, out)


def _build_plans(project: Project) -> list[BuildPlan]:
    paths = Paths(project.project_dir)
    return build_plan.plans(
        project,
        paths=paths,
        idf_root=idftool.idf_path(os.environ),
        signing=_signing_plan(project),
        decrypt_key=_decrypt_key(project),
    )


def _defaults_layers(plan: BuildPlan, tree: list[Path]) -> list[Path]:
    """Where the sdkconfig defaults come from (BuildPlan.defaults_layers): the rendered file
    always (render makes it), the others where they exist. Files of a tree a task writes are
    file_dep already (and may not be there yet)."""
    rendered, written = plan.defaults[-1], set(tree)
    others = [p for p in plan.defaults_layers if p != rendered and p not in written]
    return [rendered, *(p for p in others if p.is_file())]


def _completed(step: Callable[..., None], plan: BuildPlan, facts: _Facts, *rest: Any) -> None:
    """A build step with its plan completed from the facts files (the host, the app's Kconfig)."""
    step(facts.build(plan), *rest)


def _build_tasks(
    plan: BuildPlan,
    facts: _Facts,
    *,
    basename: str = "build",
    idf: idftool.IdfTool | None = None,
    tree: list[Path] | None = None,
) -> list[dict[str, Any]]:
    """build:<app> (and the rehearsal's stand-in builds) as steps with files between them:
    config → idf (idf.py build → images.json) → checks → sign → merge → the summary app.json."""
    app, sdkconfig_json = plan.app, plan.build_dir / "config" / "sdkconfig.json"
    tree = tree or []
    facts = facts.of(app)
    known = facts.deps  # the facts files the steps complete their plan from
    sources = (
        staging.app_sources(plan.source, exclude=plan.placed, project_dir=plan.project_root)
        if plan.source.is_dir()
        else []
    )
    ca = [plan.ca_source] if plan.ca_source is not None else []
    placed = [*ca, *([plan.decrypt_key_source] if plan.decrypt_key_source else [])]
    signed = [plan.signed_app] if plan.signing is not None else []
    key = [plan.signing_key] if plan.signing_key is not None else []
    built, checked = [plan.built_images], [plan.checked]
    config = {"target": plan.target, "idf": plan.idf, "layers": [str(p) for p in plan.defaults]}
    steps: list[dict[str, Any]] = [
        recorded(
            {
                "name": f"{app}:config",
                "doc": "what the sdkconfig is made from; when that changes, the old one goes",
                "actions": [(run, [_step("configure"), plan])],
                "file_dep": [*tree, *_defaults_layers(plan, tree)],
                "targets": [plan.sdkconfig_inputs],
                "uptodate": [fingerprint(config)],
            }
        ),
        recorded(
            {
                "name": f"{app}:idf",
                "doc": f"idf.py build of {plan.source}",
                "actions": [(run, [_completed, _step("run_idf"), plan, facts, idf])],
                # Every input of the app: its staged sources, the ESP-IDF tree a task writes
                # (the rehearsal's synthetic one), the rendered defaults and table, the CA.
                "file_dep": [
                    *known,
                    *sources,
                    *tree,
                    plan.sdkconfig_inputs,
                    Paths(plan.project_root).partitions_csv,
                    *placed,
                ],
                # The sdkconfig too: a change by idf.py menuconfig builds again.
                "targets": [*built, plan.sdkconfig, sdkconfig_json],
                "uptodate": [fingerprint(plan.idf_json())],
                "verbosity": 2,
            },
            listed=(_step("made_files"), [plan]),
        ),
        recorded(
            {
                "name": f"{app}:checks",
                "doc": "the options took effect, the images verify; what the app's code does",
                "actions": [(run, [_completed, _step("check"), plan, facts])],
                "file_dep": [*known, *built, plan.sdkconfig, sdkconfig_json],
                "targets": checked,
                "uptodate": [fingerprint({**plan.to_json(), "signing": None})],
                "verbosity": 2,
            }
        ),
    ]
    if plan.signing is not None:
        steps.append(
            recorded(
                {
                    "name": f"{app}:sign",
                    "doc": "sign the app with ota.sign's key and verify it with espsecure",
                    "actions": [(run, [_completed, _step("sign"), plan, facts])],
                    "file_dep": [*known, *built, *key],
                    "targets": signed,
                    "uptodate": [fingerprint(plan.to_json())],
                    "verbosity": 2,
                }
            )
        )
    steps += [
        recorded(
            {
                "name": f"{app}:merge",
                "doc": "merged.bin: every image in one, for factory programming",
                "actions": [(run, [_completed, _step("merge"), plan, facts])],
                "file_dep": [*known, *built, *signed],
                "targets": [plan.merged],
                "uptodate": [fingerprint(plan.to_json())],
            }
        ),
        recorded(
            {
                "name": app,
                "doc": f"build/{app}/app.json: the images and the app's facts ({plan.source})",
                "actions": [(run, [_completed, _step("summarize"), plan, facts])],
                "file_dep": [*known, *built, *checked, *signed, plan.merged, *ca],
                "targets": [plan.summary],
                "uptodate": [fingerprint(plan.to_json())],
                "verbosity": 2,
            }
        ),
    ]
    return [{"basename": basename, **step} for step in steps]


def task_build() -> Iterator[dict[str, Any]]:
    """Build every app with idf.py, check its options and images, and write build/manifest.json."""
    return _task_build()


def _task_build() -> Iterator[dict[str, Any]]:
    project = load_project()
    paths = Paths(project.project_dir)
    plans = _build_plans(project)
    facts = _facts(project)
    # The group runs its steps; itself it does nothing, so a no-op run writes no doit record.
    yield {"name": None, "doc": task_build.__doc__, "uptodate": [True]}
    for plan in plans:
        yield from _build_tasks(plan, facts)
    summaries = [plan.summary for plan in plans]
    yield recorded(
        {
            "name": "manifest",
            "doc": "build/manifest.json: versions, images and their sha256",
            "actions": [
                (
                    run,
                    [
                        _write_manifest,
                        project.name,
                        project.project_dir,
                        summaries,
                        paths.manifest,
                    ],
                )
            ],
            "file_dep": summaries,
            "targets": [paths.manifest],
            "clean": True,
        }
    )


def _reproduce(plans: list[BuildPlan], work: Path, facts: _Facts) -> None:
    from .firmware import repro

    repro.reproduce([facts.build(plan) for plan in plans], work)


def task_reproduce() -> dict[str, Any]:
    """Build every app twice at two paths and prove the images and ELF are byte-identical."""
    return _task_reproduce()


def _task_reproduce() -> dict[str, Any]:
    project = load_project()
    paths = Paths(project.project_dir)
    plans = _build_plans(project)
    facts = _facts(project)
    return {
        "actions": [(run, [_reproduce, plans, paths.reproduce, facts])],
        "file_dep": [p.ca_source for p in plans if p.ca_source is not None]
        + [paths.partitions_csv, *(paths.sdkconfig_defaults(p.app) for p in plans), *facts.deps],
        "uptodate": [False],
        "verbosity": 2,
    }


def _menuconfig(plans: dict[str, BuildPlan], facts: _Facts, app: str) -> TaskFailed | None:
    if app not in plans:
        return TaskFailed(f"--app: no app '{app}' in project.yaml; apps: {', '.join(plans)}")
    return run(_step("menuconfig"), facts.build(plans[app]))


def task_menuconfig() -> dict[str, Any]:
    """Run idf.py menuconfig for one app (--app NAME); print the project.yaml lines to keep it."""
    return _task_menuconfig()


def _task_menuconfig() -> dict[str, Any]:
    project = load_project()
    plans = {plan.app: plan for plan in _build_plans(project)}
    paths = Paths(project.project_dir)
    facts = _facts(project)
    return {
        "actions": [(_menuconfig, [plans, facts])],
        "params": [
            {
                "name": "app",
                "long": "app",
                "type": str,
                "default": project.flash_app,
                "help": "the app to configure (default: flash_app)",
            }
        ],
        # build:<app>:config first drops an sdkconfig made from other defaults, as for a build.
        "file_dep": [
            paths.partitions_csv,
            *(plan.sdkconfig_inputs for plan in plans.values()),
            *facts.deps,
        ],
        "uptodate": [False],
        "verbosity": 2,
    }


def _flash(
    plan: flash.FlashPlan, port: str | None, baud: int | None, erase: bool
) -> TaskFailed | None:
    return run(functools.partial(flash.write, port=port, baud=baud, erase=erase), plan)


def task_flash() -> dict[str, Any]:
    """Write bootloader, partition table, otadata and flash_app to the board; skip what it holds."""
    return _task_flash()


def _task_flash() -> dict[str, Any]:
    project = load_project()
    plan = flash.plan(project, Paths(project.project_dir), signing=_signing_plan(project))
    return {
        "actions": [(_flash, [plan])],
        "params": [
            PORT_OPTION,
            {
                "name": "baud",
                "long": "baud",
                "short": "b",
                "type": baud_option,
                "default": None,
                "help": "baud rate (default: $ESPBAUD or flash.baud)",
            },
            {
                "name": "erase",
                "long": "erase",
                "type": bool,
                "default": False,
                "help": "erase the whole chip first (like idf.py erase-flash flash)",
            },
        ],
        "file_dep": [plan.app_summary],
        "uptodate": [False],
        "verbosity": 2,
    }


def _status(plan: board.BoardPlan, port: str | None) -> TaskFailed | None:
    return run(functools.partial(board.status, port=port), plan)


def task_status() -> dict[str, Any]:
    """Show the board's partition table, the slot otadata boots, and the app in each slot."""
    return _task_status()


def _task_status() -> dict[str, Any]:
    return {
        "actions": [(_status, [board.plan(load_project())])],
        "params": [PORT_OPTION],
        "uptodate": [False],
        "verbosity": 2,
    }


def _boot(plan: board.BoardPlan, port: str | None, slot: str) -> TaskFailed | None:
    if not slot:
        return TaskFailed("doit boot needs --slot NAME (factory, ota_0, ...)")
    return run(functools.partial(board.boot, slot=slot, port=port), plan)


def task_boot() -> dict[str, Any]:
    """Make the board boot another slot next (--slot factory|ota_0|...) by rewriting otadata."""
    return _task_boot()


def _task_boot() -> dict[str, Any]:
    return {
        "actions": [(_boot, [board.plan(load_project())])],
        "params": [
            PORT_OPTION,
            {
                "name": "slot",
                "long": "slot",
                "type": slot_option,
                "default": "",
                "help": "the app partition to boot (factory erases otadata)",
            },
        ],
        "uptodate": [False],
        "verbosity": 2,
    }


def _monitor(
    project_dir: Path, app: str, configured: str | None, port: str | None
) -> TaskFailed | None:
    release_lock()  # a monitor runs for hours; builds in another terminal must not wait for it
    return run(
        functools.partial(board.monitor, port=port), Paths(project_dir).app_build(app), configured
    )


def task_monitor() -> dict[str, Any]:
    """Open esp-idf-monitor on the board at the console baud, decoding addresses with the ELF."""
    return _task_monitor()


def _task_monitor() -> dict[str, Any]:
    project = load_project()
    return {
        "actions": [(_monitor, [project.project_dir, project.flash_app, project.flash.port])],
        "params": [PORT_OPTION],
        "uptodate": [False],
        "verbosity": 2,
    }


def _serve_plan(project: Project) -> serving.ServePlan | None:
    if project.ota is None:
        return None
    signing = _signing_plan(project)
    with planning():
        return serving.plan(project, Paths(project.project_dir), signing=signing)


def _release_plan(project: Project) -> releasing.ReleasePlan | None:
    return releasing.plan(
        project,
        Paths(project.project_dir),
        signing=_signing_plan(project),
        encryption=_encryption_plan(project),
    )


def _record_release(plan: releasing.ReleasePlan) -> None:
    releasing.record_release(plan)


def task_release() -> dict[str, Any]:
    """Record the served app's build as releases/<app>/<version>/, once; patches, encrypted image.

    ota.delta adds esp_delta_ota patches from earlier releases, ota.encrypt the encrypted image.
    """
    return _task_release()


def _task_release() -> dict[str, Any]:
    project = load_project()
    plan = _release_plan(project)
    if plan is None:
        return {"actions": [], "doc": "project.yaml has no ota: section; nothing to release"}
    keys = [key for key in (plan.signing_key, plan.encryption and plan.encryption.key) if key]
    return {
        "actions": [(run, [_record_release, plan])],
        "file_dep": [plan.app_summary, *keys],
        "targets": [plan.folder / "release.json"],
        "uptodate": [fingerprint(plan.to_json())],
        "verbosity": 2,
    }


def _chosen_release(plan: serving.ServePlan, version: str) -> serving.ServePlan:
    """--release VERSION serves an earlier release instead of the current one."""
    if not version:
        return plan
    return dataclasses.replace(plan, release_dir=plan.release_dir.parent / version)


RELEASE_OPTION = {
    "name": "release",
    "long": "release",
    "type": str,
    "default": "",
    "help": "serve this released version (default: the current one, apps.<image>.version)",
}


def _serve(
    plan: serving.ServePlan, facts: _Facts, engine: str, log_format: str, release: str
) -> TaskFailed | None:
    """doit passes --engine/--log-format by parameter name; Ctrl-C returns normally (exit 0)."""
    # doit already limited both to their `choices`.
    chosen = dataclasses.replace(
        _chosen_release(facts.serve(plan), release),
        engine=cast(serving.Engine, engine),
        log_format=cast(serving.LogFormat, log_format),
    )
    # Serving runs until Ctrl-C: other commands (status, a rebuild) must not wait for it. Targets
    # are replaced atomically, so what it reads next is old or new, never half.
    release_lock()
    from .serve import engines

    return run(engines.run, chosen)


def task_serve() -> dict[str, Any]:
    """Serve the current release (image, .sha256, patches, manifest) over HTTPS until Ctrl-C."""
    return _task_serve()


def _task_serve() -> dict[str, Any]:
    project = load_project()
    plan = _serve_plan(project)
    if plan is None:
        return {"actions": [], "doc": "project.yaml has no ota: section; nothing to serve"}
    where = cert_files(plan.certs_dir)
    flashed = [plan.flash_summary] if plan.flash_summary else []
    flashed += [plan.signing_key] if plan.signing_key else []
    facts = _facts(project)
    return {
        "actions": [(_serve, [plan, facts])],
        # The flashed app too: the check that it embeds this CA must never be skipped.
        "file_dep": [
            *facts.host_deps,
            plan.app_summary,
            plan.release_dir / "release.json",  # doit releases first
            *flashed,
            where.ca_cert,
            where.server_cert,
            where.server_key,
        ],
        "params": [
            RELEASE_OPTION,
            {
                "name": "engine",
                "long": "engine",
                "type": str,
                "default": "python",
                "choices": [
                    ("python", "the built-in server"),
                    ("nginx", "nginx in the foreground with build/publish/"),
                ],
                "help": "which server to run (default: python)",
            },
            {
                "name": "log_format",
                "long": "log-format",
                "type": str,
                "default": "text",
                "choices": [
                    ("text", "one line per request"),
                    ("json", "one JSON object per request"),
                ],
                "help": "request log format (default: text)",
            },
        ],
        "uptodate": [False],
        "verbosity": 2,
    }


def _current_release_asked(task: Any, values: dict[str, object]) -> bool:
    """`doit publish --release VERSION` always writes, and so does the next plain publish: the
    fingerprint knows only the current release."""
    return not task.options.get("release") and not values.get("published_release")


def _published_release(release: str) -> dict[str, str]:
    return {"published_release": release}


def _publish(plan: serving.ServePlan, facts: _Facts, release: str) -> TaskFailed | None:
    return run(publish.write, _chosen_release(facts.serve(plan), release))


def task_publish() -> dict[str, Any]:
    """Write build/publish/: the release's served files and an nginx config for them."""
    return _task_publish()


def _task_publish() -> dict[str, Any]:
    project = load_project()
    plan = _serve_plan(project)
    if plan is None:
        return {"actions": [], "doc": "project.yaml has no ota: section; nothing to publish"}
    where = cert_files(plan.certs_dir)
    facts = _facts(project)
    return recorded(
        {
            "actions": [(_publish, [plan, facts]), _published_release],
            "params": [RELEASE_OPTION],
            "file_dep": [
                *facts.host_deps,
                plan.app_summary,
                plan.release_dir / "release.json",
                where.ca_cert,
                where.server_cert,
                where.server_key,
                TEMPLATES / "nginx.conf.j2",
                *([plan.signing_key] if plan.signing_key else []),
            ],
            "targets": publish.targets(plan),
            "uptodate": [fingerprint(plan.to_json()), _current_release_asked],
            "clean": True,
            "verbosity": 2,
        }
    )


def _rehearsed(project: Project) -> Project:
    """The project the rehearsal plays (with apps.<name>_next where it needs a newer image)."""
    from .rehearsal import next_app

    return next_app.rehearsed(project)


def _rehearsal_plan(project: Project) -> rehearse.RehearsalPlan | None:
    from .rehearsal import rehearse

    project = _rehearsed(project)
    cert_plan = _cert_plan(project)
    if cert_plan is None:
        return None
    signing_plan = _signing_plan(project)
    encryption_plan = _encryption_plan(project)
    with planning():
        return rehearse.plan(
            project,
            cert_plan=cert_plan,
            signing_plan=signing_plan,
            encryption_plan=encryption_plan,
            env=os.environ,
            standin=standin_requested(),
        )


def _fail(line: str) -> TaskFailed:
    return TaskFailed(line)


def _rehearse(
    plan: rehearse.RehearsalPlan, facts: _Facts, fail: str, partial: bool, delta: bool
) -> TaskFailed | None:
    # --standin already chose the builds when the tasks were made (wiring.standin_requested).
    from .rehearsal import rehearse

    action = functools.partial(rehearse.run, failure=fail, partial=partial, delta=delta)
    found = dataclasses.replace(plan, certs=facts.certs(plan.certs), serve=facts.serve(plan.serve))
    return run(action, found)


def _virtual_builds(project: Project) -> Iterator[dict[str, Any]]:
    """rehearse-build:esp-idf and :<app>: with no ESP-IDF here (or --standin), the stand-in builds
    every app into build/virtual/, through the same task as build:<app>, from the ESP-IDF tree
    $IDF_PATH names or else a synthetic one. Their output is shown only when one fails: the
    stand-in's imitation of idf.py's is kept in each app's build.log."""
    from .rehearsal import rehearse, standin

    yield {
        "basename": "rehearse-build",
        "name": None,
        "doc": "Build each app with the idf.py stand-in in build/virtual/ (no ESP-IDF; --standin).",
    }
    root = rehearse.idf_root(project, os.environ)
    real = idftool.idf_tree(os.environ) is not None
    tree = [] if real else rehearse.idf_tree_files(root)
    yield recorded(
        {
            "basename": "rehearse-build",
            "name": "esp-idf",
            "doc": "the synthetic ESP-IDF tree the stand-in builds the examples from",
            # An ESP-IDF tree $IDF_PATH names is used as it is, never written to.
            "actions": [] if real else [(rehearse.write_idf_tree, [root])],
            "targets": tree,
            "uptodate": [fingerprint({"tree": str(root)})],
            "clean": True,
        }
    )
    rehearsed = _rehearsed(project)
    facts = _facts(project, rehearsed)
    for plan in rehearse.builds(
        rehearsed, _signing_plan(project), _decrypt_key(project), os.environ
    ):
        # The stand-in's output imitates idf.py's: shown only when a step fails.
        for step in _build_tasks(
            plan, facts, basename="rehearse-build", idf=standin.tool(), tree=tree
        ):
            yield {**step, "verbosity": 1}


def _next_build(project: Project) -> Iterator[dict[str, Any]]:
    """rehearse-build:<app>_next with ESP-IDF here: the flashed app at the next version."""
    rehearsed = _rehearsed(project)
    own = {app.name for app in project.apps}
    for plan in _build_plans(rehearsed):
        if plan.app not in own:
            yield from _build_tasks(plan, _facts(project, rehearsed), basename="rehearse-build")


def task_rehearse() -> Iterator[dict[str, Any]]:
    """Rehearse the whole OTA on a virtual board: flash, serve, update, reboot (no hardware)."""
    return _task_rehearse()


def _task_rehearse() -> Iterator[dict[str, Any]]:
    project = load_project()
    if not rehearsal_asked():
        # `doit build` and the like: the rehearsal is neither run nor listed, so it is not
        # planned (its plan imports the virtual board's ESP-IDF data; bench/noop.py).
        yield {"basename": "rehearse", "actions": [], "uptodate": [False]}
        return
    from .rehearsal import missing_extra
    from .rehearsal.failures import FAILURES

    missing = missing_extra()
    if missing is not None:  # every other task works without the extra
        yield {
            "basename": "rehearse",
            "actions": [(_fail, [missing])],
            "params": _rehearse_params(FAILURES),
            "uptodate": [False],
        }
        return
    from .rehearsal import rehearse

    plan = _rehearsal_plan(project)
    if plan is None:
        yield {
            "basename": "rehearse",
            "actions": [],
            "doc": "project.yaml has no ota: section; nothing to rehearse",
        }
        return
    if plan.synthetic:
        yield from _virtual_builds(project)
    else:
        yield from _next_build(project)
    facts = _facts(project, _rehearsed(project))
    yield {
        "basename": "rehearse",
        "actions": [(_rehearse, [plan, facts])],
        # Made first by render, certs, signing-key and build (or rehearse-build) as usual.
        "file_dep": [*rehearse.inputs(plan), *facts.host_deps],
        "params": _rehearse_params(FAILURES),
        "uptodate": [False],
        "verbosity": 2,
    }


def _rehearse_params(failures: dict[str, str]) -> list[dict[str, Any]]:
    """doit rehearse's options (the same without the extra, so its line is what a run says)."""
    return [
        {
            "name": "fail",
            "long": "fail",
            "type": str,
            "default": "none",
            "choices": list(failures.items()),
            "help": "rehearse a failure; the board must keep booting the factory app",
        },
        {
            "name": "partial",
            "long": "partial",
            "type": bool,
            "default": False,
            "help": "download as esp_https_ota's partial download does (HEAD, then Range GETs)",
        },
        {
            "name": "delta",
            "long": "delta",
            "type": bool,
            "default": False,
            "help": "run the previous release, then update through its patch (ota.delta)",
        },
        {
            "name": "standin",
            "long": "standin",
            "type": bool,
            "default": False,
            "help": "build with the idf.py stand-in under build/virtual/ even where ESP-IDF "
            "is installed (its images hold no program)",
        },
    ]
