"""The local CA and the server certificate that matches the OTA URL host (certs), built with
cryptography (x509). May import: config, idf and the shared modules.
"""
