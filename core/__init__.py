"""The Perezvon core: models, plugin host, lead intake, callback engine, worker."""

import importlib.metadata


def version() -> str:
    try:
        return importlib.metadata.version("perezvon")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
