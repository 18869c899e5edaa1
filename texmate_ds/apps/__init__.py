"""Bundled TTP apps, and only those: each module defines ``Extension``
(docs/protocol.md, "Site TTP apps") and is found and loaded by plugins.py exactly like a
site's own app."""
