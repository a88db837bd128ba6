"""Releases: the boundary between building and delivering. A release records what is delivered
(releases/<app>/<version>/, immutable, with its hashes, patches and encrypted image), and `site`
says which URL path serves which of its files; every delivery engine reads only this."""
