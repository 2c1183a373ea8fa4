"""reportgen's version, in a module of its own: the modules that stamp it (the manifest,
shards, the CLI, the User-Agent of URL fetches) import it from here, not from the package
root, whose facade imports the API (an import circle otherwise)."""

__version__ = "0.1.0"
