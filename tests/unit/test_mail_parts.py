"""mail.py's parts that need no server: the retry schedule, the message
a letter becomes, the test seam's parsing."""

import email
import email.policy
import email.utils

import pytest

from texmate_ds import mail, times
from texmate_ds.store.alarms import Letter


def letter(**changes):
    fields = dict(id=7, alarm_id=3, kind="email", recipient="ann@example.com",
                  subject="Alarm A1 level 2", body="high\n", state="queued",
                  created=1231119045000000, attempts=0, next_attempt=0, last_attempt=None,
                  last_reply="")
    fields.update(changes)
    return Letter(**fields)


def read(msg):
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)


def text(got):
    """The body as written (on the wire its lines end in CRLF)."""
    return got.get_content().replace("\r\n", "\n")


@pytest.mark.parametrize("failures,low,high", [
    (1, 15, 30), (2, 30, 60), (3, 60, 120), (4, 120, 240), (7, 960, 1920),
    (8, 1800, 3600), (9, 1800, 3600), (40, 1800, 3600), (10 ** 6, 1800, 3600)])
def test_backoff_doubles_with_jitter_up_to_an_hour(failures, low, high):
    assert mail.retry_delay(failures, lambda: 0.0) == low
    assert mail.retry_delay(failures, lambda: 1.0) == high
    assert low <= mail.retry_delay(failures) <= high


def test_the_time_scale_shortens_the_whole_schedule():
    assert mail.retry_delay(1, lambda: 1.0, scale=0.01) == pytest.approx(0.3)
    assert mail.retry_delay(50, lambda: 1.0, scale=0.01) == pytest.approx(36)


@pytest.mark.parametrize("text,scale", [("", 1.0), ("0.01", 0.01), ("1", 1.0),
                                        ("0", 1.0), ("-1", 1.0), ("2", 1.0), ("fast", 1.0)])
def test_the_time_scale_is_read_from_the_environment(text, scale):
    assert times.time_scale(mail.SCALE_VARIABLE, {mail.SCALE_VARIABLE: text}) == scale


def test_the_message_has_every_header_and_its_body():
    got = read(mail.message(letter(), "Data Server <ds@example.com>"))
    assert got["Subject"] == "Alarm A1 level 2"
    assert got["From"] == "Data Server <ds@example.com>"
    assert got["To"] == "ann@example.com"
    assert email.utils.parsedate_to_datetime(got["Date"]).tzinfo is not None
    # The same on every attempt: a letter sent twice can be told.
    assert got["Message-ID"] == "<txm.7.1231119045000000@example.com>"
    assert got["Auto-Submitted"] == "auto-generated"
    assert got.get_content_type() == "text/plain"
    assert got.get_content_charset() == "utf-8"
    assert text(got) == "high\n"


def test_a_body_beyond_ascii_goes_as_7_bit_utf_8():
    body = "Température 21 °C, débit ≥ 3 m³/h\n" * 3
    data = mail.message(letter(body=body, subject="Überlauf"), "ds@example.com").as_bytes()
    assert data.isascii()
    got = email.message_from_bytes(data, policy=email.policy.default)
    assert got["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert text(got) == body
    assert got["Subject"] == "Überlauf"


def test_a_line_break_in_the_subject_becomes_a_space():
    got = read(mail.message(letter(subject="level 2\r\nBcc: eve@example.com\n"), "ds@x.org"))
    assert got["Subject"] == "level 2 Bcc: eve@example.com"
    assert got["Bcc"] is None


def test_a_bad_address_is_refused():
    with pytest.raises(ValueError):
        mail.message(letter(recipient="ann@example.com\r\nBcc: eve@example.com"), "ds@x.org")
