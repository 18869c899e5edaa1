"""What people may configure (rules.py): graph options and displays,
checked before the store writes them."""

import pytest

from texmate_ds import rules
from texmate_ds.store import Axis, GraphOptions, Unit


def unit(code, fields, unit_id=1):
    return Unit(unit_id, code, "k", "", "", fields, (), True, None)


def test_graph_options():
    a1 = unit("A1", 3)
    rules.check_graph_options(a1, GraphOptions(640, 200, (Axis("Flow", (1, 2)), Axis("<b>", (3,)))))
    rules.check_graph_options(a1, GraphOptions(100, 4000, ()))
    with pytest.raises(ValueError, match="axis 'x': field numbers from 1 to 3"):
        rules.check_graph_options(a1, GraphOptions(640, 200, (Axis("x", (4,)),)))
    with pytest.raises(ValueError, match="axis 'x'"):
        rules.check_graph_options(a1, GraphOptions(640, 200, (Axis("x", ()),)))
    with pytest.raises(ValueError, match="graph width: 100 to 4000 pixels"):
        rules.check_graph_options(a1, GraphOptions(50, 200, ()))
    with pytest.raises(ValueError, match="graph height"):
        rules.check_graph_options(a1, GraphOptions(640, 4001, ()))


def test_displays():
    a, b = unit("A1", 4, 1), unit("B7", 2, 2)
    rules.check_display("Pumps", 5, [(b, 2), (a, 1), (a, 3)])
    with pytest.raises(ValueError, match="unit B7 has fields 1 to 2, not 3"):
        rules.check_display("Bad", 5, [(b, 3)])
    with pytest.raises(ValueError, match="twice"):
        rules.check_display("Twice", 5, [(b, 1), (b, 1)])
    for name, refresh, channels in (("Empty", 5, []), (" ", 5, [(b, 1)]), ("Slow", 0, [(b, 1)])):
        with pytest.raises(ValueError, match="needs a name"):
            rules.check_display(name, refresh, channels)
