"""Releases: the boundary between building and delivering. A release records what is delivered
(releases/<app>/<version>/, immutable, with its hashes, patches and encrypted image), and `site`
says which URL path serves which of its files; every delivery engine reads only this."""

from ..errors import ProjectError

__all__ = ["ReleaseError"]


# Here, not in release_record: the planners (imported by every doit run) name it, while the
# records are read by actions alone (bench/noop.py).
class ReleaseError(ProjectError):
    """A release cannot be made or read."""
