"""Bundled TTP apps: each module defines ``Extension`` (ttp.md section 9)
and is loaded by ``ttp.load_extensions`` exactly like a site's own app."""
