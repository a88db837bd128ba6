"""The rehearsal: the whole OTA story on a virtual board (rehearse), with an emulated ROM loader
(board), a bootloader and esp_https_ota-like client over its flash (device), a synthetic ESP-IDF
tree (idf_tree) and the idf.py stand-in (standin). Nothing outside this package imports it.
May import: every area.
"""
