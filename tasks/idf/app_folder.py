"""An ESP-IDF app project as ESP-IDF's CMake reads it: the `project()` name, PROJECT_VER,
version.txt, the files main/ embeds, and the `string` options of its own Kconfig files
(read by kconfig_options).

Pure readers of text, plus `read_app` which gathers them from a folder (ESP-IDF v5.3's
tools/cmake/project.cmake and component.cmake name these).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import cmake_lists
from .app_code import sources
from .kconfig.app_options import KconfigString, kconfig_strings
from .kconfig.sdkconfig import EXAMPLE_PASSWORD_OPTION, EXAMPLE_SSID_OPTION

__all__ = [
    "AppFiles",
    "FixedUrl",
    "defaults_in_cmake",
    "embedded_files",
    "fetches_over_http",
    "fixed_urls",
    "handed_as_url",
    "is_idf_app",
    "project_name",
    "project_version",
    "read_app",
    "url_options",
    "url_options_in_code",
    "wifi_options",
]

_COMMENT = re.compile(r"#[^\n]*")
_PROJECT = re.compile(r"^\s*project\s*\(\s*([^\s)]+)", re.IGNORECASE | re.MULTILINE)
_PROJECT_VERSION = re.compile(r"^\s*project\s*\([^)]*\bVERSION\s+([0-9.]+)", re.I | re.M)
_PROJECT_VER = re.compile(r"^\s*set\s*\(\s*PROJECT_VER\s+\"?([^\")\s]+)\"?\s*\)", re.I | re.M)
# An app's own Wi-Fi options: *_WIFI_SSID / *_WIFI_PASSWORD and their usual spellings.
_WIFI_SSID = re.compile(r"CONFIG_\w*(?:WIFI|WLAN|STA)\w*_SSID")
_WIFI_PASSWORD = re.compile(r"CONFIG_\w*(?:WIFI|WLAN|STA)\w*_(?:PASSWORD|PASS|PSK|PWD)")
# protocol_examples_common's (examples/common_components), for the apps that use it.
_EXAMPLES_WIFI = (EXAMPLE_SSID_OPTION, EXAMPLE_PASSWORD_OPTION)


def _code(text: str) -> str:
    """CMake text without comments (no CMake string holds a # in the lines we read)."""
    return _COMMENT.sub("", text)


def project_name(cmakelists: str) -> str | None:
    """The name given to `project()` in a top-level CMakeLists.txt."""
    found = _PROJECT.search(_code(cmakelists))
    return found.group(1) if found else None


def is_idf_app(folder: Path) -> bool:
    """A folder ESP-IDF can build: a CMakeLists.txt that calls project()."""
    try:
        return project_name((folder / "CMakeLists.txt").read_text(encoding="utf-8")) is not None
    except (OSError, UnicodeDecodeError):
        return False


def project_version(cmakelists: str) -> str | None:
    """`set(PROJECT_VER "x")` in the top-level CMakeLists.txt (ESP-IDF's first version source)."""
    found = _PROJECT_VER.search(_code(cmakelists))
    return found.group(1) if found else None


def embedded_files(component_cmakelists: str, scope: cmake_lists.Scope | None = None) -> list[str]:
    """The files a component embeds (EMBED_TXTFILES, then EMBED_FILES), read as CMake reads the
    file (cmake_lists): with `scope`'s variables resolved, else every reference as written."""
    args = cmake_lists.component_args(
        component_cmakelists, scope or cmake_lists.Scope({}, keep_unknown=True)
    )
    return [*args.get("EMBED_TXTFILES", []), *args.get("EMBED_FILES", [])]


@dataclass(frozen=True, slots=True, kw_only=True)
class AppFiles:
    """What an app folder says about itself, file by file (None where a file is absent)."""

    root: Path
    name: str
    project_ver: str | None  # set(PROJECT_VER ...) in CMakeLists.txt
    project_version: str | None  # project(name VERSION x.y.z)
    version_txt: str | None  # the first line of version.txt
    embedded: tuple[str, ...]  # main/'s EMBED_TXTFILES and EMBED_FILES, relative to root
    kconfig_strings: tuple[KconfigString, ...]  # of every Kconfig.projbuild in the app
    uses_examples_common: bool  # protocol_examples_common (the OTA examples' Wi-Fi/Ethernet)
    # idf_build_set_property(MINIMAL_BUILD ON): ESP-IDF v5.5+ examples configure only the
    # components main needs.
    minimal_build: bool = False
    # set(SDKCONFIG_DEFAULTS ...) or list(APPEND SDKCONFIG_DEFAULTS ...) in CMakeLists.txt.
    sdkconfig_defaults: tuple[str, ...] = ()


_SET_DEFAULTS = re.compile(
    r"^\s*(?:set|list\s*\(\s*APPEND)\s*\(?\s*SDKCONFIG_DEFAULTS\s+([^)]*)\)", re.I | re.M
)


def defaults_in_cmake(cmakelists: str) -> tuple[str, ...]:
    """The defaults files a top-level CMakeLists.txt names in SDKCONFIG_DEFAULTS, relative to
    the project folder (project.cmake reads the variable it sets before project())."""
    names: list[str] = []
    for found in _SET_DEFAULTS.finditer(_code(cmakelists)):
        for item in re.split(r"[;\s]+", found.group(1).replace('"', " ")):
            for prefix in ("${CMAKE_CURRENT_LIST_DIR}/", "${CMAKE_SOURCE_DIR}/", "${PROJECT_DIR}/"):
                item = item.removeprefix(prefix)
            if item and "$" not in item:
                names.append(item)
    return tuple(names)


_MINIMAL_BUILD = re.compile(
    r"idf_build_set_property\s*\(\s*MINIMAL_BUILD\s+(ON|TRUE|1|YES|Y)\b", re.I
)


def _relative_embed(written: str, root: Path) -> str:
    """An EMBED_* argument as a path relative to the app root; main/ is the base of bare names."""
    if Path(written).is_absolute() and Path(written).is_relative_to(root):
        return Path(written).relative_to(root).as_posix()
    for variable in ("${project_dir}", "${PROJECT_DIR}", "${CMAKE_SOURCE_DIR}"):
        if written.startswith(variable + "/"):
            return written.removeprefix(variable + "/")
    bare = written.removeprefix("${CMAKE_CURRENT_SOURCE_DIR}/").removeprefix("${COMPONENT_DIR}/")
    return (Path("main") / bare).as_posix() if not Path(bare).is_absolute() else bare


def _projbuilds(root: Path) -> list[Path]:
    """main/'s and each components/<name>/'s Kconfig.projbuild and Kconfig, the files ESP-IDF
    sources for the app's own components."""
    candidates = [root / "main" / "Kconfig.projbuild", root / "main" / "Kconfig"]
    components = root / "components"
    if components.is_dir() and not components.is_symlink():
        candidates += sorted(components.glob("*/Kconfig.projbuild"))
        candidates += sorted(components.glob("*/Kconfig"))
    return [path for path in candidates if path.is_file()]


def read_app(root: Path) -> AppFiles:
    """Read an ESP-IDF app folder.

    Raises:
        OSError, UnicodeDecodeError: a file the app has cannot be read.
        ValueError: the folder is not an ESP-IDF app (no CMakeLists.txt calling project()).
    """
    cmake = root / "CMakeLists.txt"
    top = cmake.read_text(encoding="utf-8") if cmake.is_file() else ""
    name = project_name(top)
    if name is None:
        raise ValueError(f"{root} is not an ESP-IDF app: no CMakeLists.txt that calls project()")
    main_cmake = root / "main" / "CMakeLists.txt"
    main_text = main_cmake.read_text(encoding="utf-8") if main_cmake.is_file() else ""
    version_file = root / "version.txt"
    version_lines = (
        version_file.read_text(encoding="utf-8").splitlines() if version_file.is_file() else []
    )
    component_yml = root / "main" / "idf_component.yml"
    yml_text = component_yml.read_text(encoding="utf-8") if component_yml.is_file() else ""
    strings = [
        option
        for path in _projbuilds(root)
        for option in kconfig_strings(path.read_text(encoding="utf-8"), path)
    ]
    return AppFiles(
        root=root,
        name=name,
        project_ver=project_version(top),
        project_version=(
            found.group(1) if (found := _PROJECT_VERSION.search(_code(top))) else None
        ),
        version_txt=version_lines[0].strip()
        if version_lines and version_lines[0].strip()
        else None,
        embedded=tuple(
            _relative_embed(item, root)
            for item in embedded_files(main_text, cmake_lists.main_scope(root, keep_unknown=True))
        ),
        kconfig_strings=tuple(strings),
        uses_examples_common="protocol_examples_common" in _code(top) + yml_text,
        minimal_build=_MINIMAL_BUILD.search(_code(top)) is not None,
        sdkconfig_defaults=defaults_in_cmake(top),
    )


def url_options(app: AppFiles) -> list[KconfigString]:
    """The app's firmware URL option candidates: string options whose default is an https://
    URL (the OTA examples' CONFIG_EXAMPLE_FIRMWARE_UPGRADE_URL, CONFIG_SENSOR_OTA_URL...)."""
    return [option for option in app.kconfig_strings if option.default.startswith("https://")]


def wifi_options(app: AppFiles) -> tuple[tuple[str, str], str] | None:
    """((SSID option, password option), where they are from): the app's own Kconfig's, else
    protocol_examples_common's when the app uses it; None when it has neither."""
    names = [option.name for option in app.kconfig_strings]
    ssid = next((name for name in names if _WIFI_SSID.fullmatch(name)), None)
    password = next((name for name in names if _WIFI_PASSWORD.fullmatch(name)), None)
    if ssid and password:
        return (ssid, password), "the app's own Kconfig.projbuild"
    if app.uses_examples_common:
        return _EXAMPLES_WIFI, "protocol_examples_common"
    return None


# The URL patterns as text, compiled (and cached) by re on first use: most runs read no URL.
_URL_FIELD = r"\burl\s*=\s*(CONFIG_\w+)"
_URL_NAMED = r"\bCONFIG_\w*URL\w*"


def handed_as_url(app: AppFiles) -> list[str]:
    """The options the app's own code hands esp_http_client as its URL as they are
    (`.url = CONFIG_X`)."""
    texts = [path.read_text(encoding="utf-8", errors="replace") for path in sources(app.root)]
    return list(dict.fromkeys(name for text in texts for name in re.findall(_URL_FIELD, text)))


def url_options_in_code(app: AppFiles) -> list[str]:
    """The options the app's own code hands esp_http_client as its URL (`.url = CONFIG_X`),
    else those it reads whose name says URL; for URL options whose default is no https:// URL
    (FROM_STDIN, empty, http)."""
    texts = [path.read_text(encoding="utf-8", errors="replace") for path in sources(app.root)]
    strings = {option.name for option in app.kconfig_strings}
    for pattern in (_URL_FIELD, _URL_NAMED):
        found = [name for text in texts for name in re.findall(pattern, text) if name in strings]
        if found:
            return list(dict.fromkeys(found))
    return []


# `.url = "https://..."` or `.url = NAME` where `#define NAME "https://..."`: a URL compiled in.
_URL_ASSIGNED = r"[.>]\s*url\s*=(?!=)\s*(\"[^\"\n]*\"|[A-Za-z_]\w*)"
_STRING_DEFINE = r"^\s*#\s*define\s+([A-Za-z_]\w*)\s+\"([^\"\n]*)\""
_SCHEME = r"^[A-Za-z][A-Za-z0-9+.-]*://"
_HTTP_CLIENT = r"\besp_(?:http_client_init|https_ota|https_ota_begin)\s*\("


@dataclass(frozen=True)
class FixedUrl:
    """A URL the app's code hands esp_http_client as a literal, where, and the macro it is
    spelled as (None for a literal written in place)."""

    value: str
    where: str
    macro: str | None


def _code_lines(app: AppFiles) -> list[tuple[str, int, str]]:
    """(file relative to the app, line number, line) of the app's own sources, comment lines
    left out (a `//` inside a string literal is kept: only lines that start a comment go)."""
    lines: list[tuple[str, int, str]] = []
    for path in sources(app.root):
        name = path.relative_to(app.root).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.lstrip().startswith(("//", "/*", "*")):
                lines.append((name, number, line))
    return lines


def fixed_urls(app: AppFiles) -> list[FixedUrl]:
    """The URLs the app's own code compiles in as esp_http_client's `.url`: a string literal,
    or a macro #defined as one. No configuration changes them."""
    lines = _code_lines(app)
    defines: dict[str, tuple[str, str]] = {}
    for name, number, line in lines:
        found = re.match(_STRING_DEFINE, line)
        if found and re.match(_SCHEME, found.group(2)):
            defines.setdefault(found.group(1), (found.group(2), f"{name}:{number}"))
    urls: list[FixedUrl] = []
    for name, number, line in lines:
        for found in re.finditer(_URL_ASSIGNED, line):
            value = found.group(1)
            if value.startswith('"') and re.match(_SCHEME, value[1:-1]):
                urls.append(FixedUrl(value[1:-1], f"{name}:{number}", None))
            elif value in defines:
                url, where = defines[value]
                urls.append(FixedUrl(url, f"{name}:{number}, {value} at {where}", value))
    return urls


def fetches_over_http(app: AppFiles) -> bool:
    """Whether the app's own code starts ESP-IDF's HTTP client or esp_https_ota at all (an app
    that writes an update with esp_ota_begin may take it over serial, USB, BLE or its own TLS)."""
    return any(re.search(_HTTP_CLIENT, line) for _, _, line in _code_lines(app))
