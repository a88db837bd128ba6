"""otadata entries, CRC and the bootloader's choice, against the rules in docs/esp-idf.md §3."""

from __future__ import annotations

import pytest
from esp_ota_doit.idf import otadata
from esp_ota_doit.idf.partition import rules

TWO_OTA = rules.layout(rules.preset("two_ota"), table_offset=0x8000, path=())
NO_FACTORY = rules.layout(
    [spec for spec in rules.preset("two_ota") if spec.name != "factory"],
    table_offset=0x8000,
    path=(),
)


def image(*entries: otadata.OtadataEntry | None) -> bytes:
    data = bytearray(otadata.blank())
    for index, entry in enumerate(entries):
        if entry is not None:
            data[index * 0x1000 : index * 0x1000 + 32] = entry.to_bytes()
    return bytes(data)


@pytest.mark.parametrize(("seq", "crc"), [(1, 0x4743989A), (2, 0x55F63774), (3, 0xED4A5011)])
def test_crc__matches_esp_rom_crc32_le(seq: int, crc: int) -> None:
    assert otadata.crc(seq) == crc


def test_decode__round_trip() -> None:
    entry = otadata.OtadataEntry.for_seq(5, state=2)
    first, second = otadata.decode(image(None, entry))
    assert second == entry and second.valid and second.state_text == "valid"
    assert first.seq == 0xFFFFFFFF and not first.valid


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ((), "factory"),
        ((otadata.OtadataEntry.for_seq(1),), "ota_0"),
        ((otadata.OtadataEntry.for_seq(2),), "ota_1"),
        ((otadata.OtadataEntry.for_seq(3),), "ota_0"),  # (seq - 1) % 2
        ((otadata.OtadataEntry.for_seq(1), otadata.OtadataEntry.for_seq(2)), "ota_1"),
        ((otadata.OtadataEntry.for_seq(4), otadata.OtadataEntry.for_seq(3)), "ota_1"),
        ((otadata.OtadataEntry(seq=2, state=0xFFFFFFFF, crc=0),), "factory"),  # bad CRC
        ((otadata.OtadataEntry.for_seq(2, state=3),), "factory"),  # INVALID
        ((otadata.OtadataEntry.for_seq(2, state=4),), "factory"),  # ABORTED
        ((otadata.OtadataEntry.for_seq(1), otadata.OtadataEntry.for_seq(2, state=4)), "ota_0"),
    ],
    ids=[
        "blank",
        "seq1",
        "seq2",
        "seq3-wraps",
        "larger-seq-wins",
        "copy0-larger",
        "bad-crc",
        "invalid",
        "aborted",
        "aborted-skipped",
    ],
)
def test_boot_slot__bootloader_rules(
    entries: tuple[otadata.OtadataEntry, ...], expected: str
) -> None:
    slot, _ = otadata.boot_slot(TWO_OTA, image(*entries))
    assert slot is not None and slot.name == expected


def test_boot_slot__no_factory_tries_ota_0() -> None:
    slot, why = otadata.boot_slot(NO_FACTORY, otadata.blank())
    assert slot is not None and slot.name == "ota_0"
    assert "No factory image, trying OTA 0" in why


def test_set_boot__sequence_like_esp_ota_set_boot_partition() -> None:
    ota_0, ota_1 = TWO_OTA.ota_slots
    data = otadata.set_boot(TWO_OTA, otadata.blank(), ota_0)
    assert otadata.decode(data)[0].seq == 1  # both invalid: copy 0, seq = slot + 1
    data = otadata.set_boot(TWO_OTA, data, ota_1)
    assert otadata.decode(data)[1].seq == 2  # the other copy, next seq mapping to ota_1
    assert otadata.boot_slot(TWO_OTA, data)[0] == ota_1
    data = otadata.set_boot(TWO_OTA, data, ota_0)
    assert otadata.decode(data)[0].seq == 3
    assert otadata.boot_slot(TWO_OTA, data)[0] == ota_0


def test_set_boot__factory_erases() -> None:
    data = otadata.set_boot(TWO_OTA, otadata.blank(), TWO_OTA.ota_slots[0])
    assert TWO_OTA.factory is not None
    assert otadata.set_boot(TWO_OTA, data, TWO_OTA.factory) == otadata.blank()


# --- the same slot chosen again: what each release writes (esp_rewrite_ota_data) -------------

WRITES_OTHER = {"5.3": True, "5.4": True, "5.5": True, "6.0": False}


@pytest.mark.parametrize("release", list(WRITES_OTHER))
def test_set_boot__same_slot_again_per_release(release: str) -> None:
    ota_0, ota_1 = TWO_OTA.ota_slots
    label = b"label-of-copy-one".ljust(20, b"\xff")
    active = otadata.OtadataEntry.for_seq(2, otadata.VALID)  # copy 0 selects ota_1
    other = otadata.OtadataEntry(seq=1, state=otadata.VALID, crc=otadata.crc(1), label=label)
    before = image(active, other)
    data = otadata.set_boot(TWO_OTA, before, ota_1, state=otadata.NEW, release=release)
    first, second = otadata.decode(data)
    if WRITES_OTHER[release]:
        # v5.3 to v5.5: the other copy gets the same seq (the smallest >= current for ota_1).
        assert first == active
        assert (second.seq, second.state, second.label) == (2, otadata.NEW, label)
    else:
        # v6.0: "ota_data is already valid and points to the correct OTA slot": only the
        # active copy's state changes; the other copy (the rollback target) is kept.
        assert second == other
        assert (first.seq, first.state, first.crc) == (2, otadata.NEW, otadata.crc(2))
    assert otadata.boot_slot(TWO_OTA, data)[0] == ota_1
    # Another slot is written the same way by every release: the other copy, the next seq.
    switched = otadata.decode(otadata.set_boot(TWO_OTA, before, ota_0, release=release))
    assert (switched[0], switched[1].seq) == (active, 3)


def test_set_boot__release_names_the_releases_py_fact() -> None:
    from esp_ota_doit.idf import releases

    assert {v: not r.otadata_rewrites_active for v, r in releases.RELEASES.items()} == WRITES_OTHER
    with pytest.raises(KeyError):
        otadata.set_boot(TWO_OTA, image(otadata.OtadataEntry.for_seq(1)), TWO_OTA.ota_slots[0],
                         release="4.4")  # fmt: skip


def test_set_boot__release_comes_from_idf_version() -> None:
    from esp_ota_doit.device import board

    from tests.test_model import MINIMAL, load

    project = load(MINIMAL.replace("apps:", 'idf: {version: "6.0"}\napps:', 1))
    plan = board.plan(project)
    assert plan.idf_version == project.table.release == "6.0"
