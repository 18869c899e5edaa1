"""SQL text the repositories share."""


def filters(*tests):
    """The WHERE clause of optional filters, and its parameters: each test
    is (SQL with one ``?``, value), and one whose value is None is left
    out. With none left, a clause that holds for every row."""
    given = [(text, value) for text, value in tests if value is not None]
    if not given:
        return "1 = 1", []
    return " AND ".join(text for text, _ in given), [value for _, value in given]
