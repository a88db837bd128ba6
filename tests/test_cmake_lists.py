"""idf/cmake_lists.py: idf_component_register()'s arguments as CMake expands them."""

from __future__ import annotations

import pytest
from esp_ota_doit.idf.cmake_lists import Scope, component_args

# Shaped like idf-extra-components' https_delta_ota main/CMakeLists.txt (our own text).
_LISTS = """\
set(SRCS "main.c")
set(EMBED_TXTFILES "certs/server.pem")   # the CA
if(CONFIG_APP_CI_TEST)
    list(APPEND SRCS "tests/server.c")
    list(APPEND EMBED_TXTFILES "certs/key.pem")
elseif(CONFIG_APP_MODE STREQUAL "demo")
    list(APPEND EMBED_TXTFILES "demo (1).pem")
else()
    set(EMBED_FILES ${project_dir}/blob.bin)
endif()
idf_build_get_property(target IDF_TARGET)
idf_component_register(SRCS ${SRCS} "${target}.c"
                       INCLUDE_DIRS "."
                       EMBED_TXTFILES ${EMBED_TXTFILES}
                       EMBED_FILES ${EMBED_FILES} $ENV{EXTRA_BLOB})
"""


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"CONFIG_APP_CI_TEST": "y"},
            {
                "SRCS": ["main.c", "tests/server.c", "esp32c3.c"],
                "EMBED_TXTFILES": ["certs/server.pem", "certs/key.pem"],
                "EMBED_FILES": ["/env/x.bin"],
            },
        ),
        (
            {"CONFIG_APP_CI_TEST": "", "CONFIG_APP_MODE": "demo"},
            {
                "SRCS": ["main.c", "esp32c3.c"],
                "EMBED_TXTFILES": ["certs/server.pem", "demo (1).pem"],
                "EMBED_FILES": ["/env/x.bin"],
            },
        ),
        (
            {},
            {
                "SRCS": ["main.c", "esp32c3.c"],
                "EMBED_TXTFILES": ["certs/server.pem"],
                "EMBED_FILES": ["/app/blob.bin", "/env/x.bin"],
            },
        ),
    ],
    ids=["if", "elseif-strequal", "else"],
)
def test_component_args__follows_set_list_and_if_over_the_config(
    config: dict[str, str], expected: dict[str, list[str]]
) -> None:
    scope = Scope(
        {"project_dir": "/app", **config}, {"IDF_TARGET": "esp32c3"}, {"EXTRA_BLOB": "/env/x.bin"}
    )
    args = component_args(_LISTS, scope)
    assert {key: args[key] for key in expected} == expected
    assert args["INCLUDE_DIRS"] == ["."]


@pytest.mark.parametrize(
    ("condition", "taken"),
    [
        ("NOT CONFIG_A", False),
        ("CONFIG_A AND NOT CONFIG_B", True),
        ("CONFIG_B OR (CONFIG_A AND CONFIG_N EQUAL 3)", True),
        ("CONFIG_N EQUAL 4", False),
        ("DEFINED CONFIG_B", True),
        ("DEFINED CONFIG_NONE", False),
        ("OFF", False),
        ("1", True),
    ],
)
def test_component_args__conditions(condition: str, taken: bool) -> None:
    text = f"if({condition})\n  set(X taken)\nendif()\nidf_component_register(SRCS ${{X}} a.c)\n"
    scope = Scope({"CONFIG_A": "y", "CONFIG_B": "", "CONFIG_N": "3"})
    assert component_args(text, scope)["SRCS"] == (["taken", "a.c"] if taken else ["a.c"])


def test_component_args__nested_if_in_a_false_branch_stays_off() -> None:
    text = "if(NO)\n if(YES)\n set(X in)\n endif()\nelse()\n set(Y else)\nendif()\n"
    text += "idf_component_register(SRCS ${X} ${Y})\n"
    assert component_args(text, Scope({}))["SRCS"] == ["else"]
