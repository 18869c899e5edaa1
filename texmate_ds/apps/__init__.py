"""Bundled TTP apps, and only those: each module defines ``Extension``
(ttp.md section 9) and is found and loaded by plugins.py exactly like a
site's own app."""
