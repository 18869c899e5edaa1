"""texmate_ds: a data server for Texmate Tiger programmable meters.

Meters speak TTP (see ``ttp.py``) over raw TCP; people use the web
interface. Everything runs in one process around one selectors loop
(``loop.py``) and one SQLite file (``store/``).
"""

__version__ = "0.1.0"
