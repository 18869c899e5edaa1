"""store.notices: the payloads a commit tells other processes, cut under
PostgreSQL's limit and read back as written."""

import pytest

from texmate_ds.store import notices


def read_back(payloads):
    return [item for payload in payloads for item in notices.decode(payload)]


def test_items_read_back_in_order_in_one_payload():
    items = [("sample", 12, [1710000000000000, 1710000001000000]), ("alarm", 12, [57]),
             ("sample", 3, [-5])]
    [payload] = notices.encode(items)
    assert payload == "s12:1710000000000000,1710000001000000 a12:57 s3:-5"
    assert read_back([payload]) == items


def test_a_long_commit_is_cut_under_the_limit_a_units_keys_carried_on():
    many = [1710000000000000 + n for n in range(1000)]
    items = [("sample", 7, [1]), ("sample", 12, many), ("alarm", 12, [57])]
    payloads = notices.encode(items)
    assert len(payloads) == 3
    assert all(len(payload.encode()) <= notices.PAYLOAD_BYTES < 8000 for payload in payloads)
    back = read_back(payloads)
    assert back[0] == ("sample", 7, [1]) and back[-1] == ("alarm", 12, [57])
    assert [key for topic, unit, keys in back[1:-1] for key in keys] == many
    assert {(topic, unit) for topic, unit, _ in back[1:-1]} == {("sample", 12)}


@pytest.mark.parametrize("payload", ["hello", "x1:2", "s1", "s1:", "sa:1", "s1:2,b"])
def test_text_that_is_not_a_notice_is_refused(payload):
    with pytest.raises(ValueError):
        notices.decode(payload)
