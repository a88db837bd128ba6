"""A board on a serial port, through esptool: the connection (link), writing it (flash), and
reading or steering it (board: status, boot, monitor). May import: config, firmware's outputs,
idf and the shared modules.
"""
