"""Serving the OTA image: what is served and what is refused (content), the HTTP protocol
(protocol), the built-in TLS server (server) and its connection budget (budget), and nginx
(nginx). May import: config, firmware's outputs, idf, tls and the shared modules.
"""
