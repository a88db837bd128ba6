"""A board on a serial port, through esptool: the connection (link), writing it (flash), the
typed board record flash hands over (record), and reading or steering it (board: the one
partition-table reader, status, boot, monitor). May import: config, firmware, idf and the shared
modules.
"""
