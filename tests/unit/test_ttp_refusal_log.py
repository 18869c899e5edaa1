"""ttp.RefusalLog on a clock the test turns: what it logs at once, what
at each flush, and that it tracks a bounded number of units."""

import logging

import pytest

from texmate_ds import ttp


class Clock:
    now = 500.0

    def __call__(self):
        return self.now


@pytest.fixture
def refusals(caplog):
    """(RefusalLog, clock, lines logged since the last call)."""
    caplog.set_level(logging.INFO, logger="texmate_ds.ttp")
    clock = Clock()

    def lines():
        said = [r.getMessage() for r in caplog.records]
        caplog.clear()
        return said
    return ttp.RefusalLog(clock), clock, lines


def test_first_refusal_at_once_then_a_count_a_period(refusals):
    log, clock, lines = refusals
    for _ in range(57):
        log.note("A1", "402", "10.0.0.1:4000", b"TTP /up/A1/<2009-1-1 0:0:0;1> secret")
    log.note("B7", "403", "10.0.0.2:4000", b"TTP /ok/B7 secret")
    assert lines() == [
        ("unit A1: 402 Unauthorized from 10.0.0.1:4000 for 'TTP /up/A1/<2009-1-1 0:0:0;1> ***';"
         " more are counted each minute"),
        ("unit B7: 403 Forbidden from 10.0.0.2:4000 for 'TTP /ok/B7 ***';"
         " more are counted each minute")]
    clock.now += 60
    log.flush()
    # B7's one refusal was told already.
    assert lines() == ["unit A1: 402 Unauthorized x57 in the last 60 s"]
    # Refused again in the next period: counted only.
    log.note("A1", "402", "10.0.0.1:4001", b"TTP /ok/A1 secret")
    log.note("B7", "403", "10.0.0.2:4001", b"TTP /ok/B7 secret")
    assert lines() == []
    clock.now += 60
    log.flush()
    assert lines() == ["unit A1: 402 Unauthorized x1 in the last 60 s",
                       "unit B7: 403 Forbidden x1 in the last 60 s"]
    # After a quiet period, told at once again.
    log.flush()
    log.note("A1", "402", "10.0.0.1:4002", b"TTP /ok/A1 secret")
    assert len(lines()) == 1


def test_a_long_request_is_cut_and_its_key_hidden(refusals):
    log, _, lines = refusals
    log.note("A1", "402", "p", b"TTP /up/A1/" + b"<2009-1-1 0:0:0;1>" * 100 + b" secret")
    said = lines()[0]
    assert "secret" not in said and "***" not in said and len(said) < 250


def test_refusals_beyond_max_keys_are_one_count(refusals):
    log, _, lines = refusals
    log.MAX_KEYS = 3
    for n in range(10):
        log.note("U%d" % n, "405", "p", b"TTP /ok/U%d k" % n)
    log.note("U0", "405", "p", b"TTP /ok/U0 k")
    assert len(lines()) == 3
    log.flush()
    assert lines() == ["unit U0: 405 Unit not found x2 in the last 0 s",
                       "7 more refusals for other units in the last 0 s"]
    log.flush()
    assert lines() == []
