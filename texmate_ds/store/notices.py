"""Notices: what a commit tells the other processes sharing the database,
so that their event buses publish it too (`texmate_ds.relay` listens).

Only where several processes share the database (PostgreSQL: the
dialect's ``shared``) does any of this run; on SQLite there is one
process.

* What. The samples stored (each by its key, unit id and timestamp: what
  the listener reads them back by, as the uploading process does after
  its own commit) and the alarms raised (unit id and alarm id), in the
  order they were written, each once. The rows themselves are read by
  the listener, and only when its bus wants them: a notice is small, and
  one nobody listens to costs a decode.
* Who writes them. The samples' by the statement that stores them
  (`PostgreSQL.insert_samples`, in SQL: only it knows which were taken
  already), an item a sample; the alarms' here (`Outgoing`, kept as they
  are written and sent by `Database.commit`).
* When. Sent inside the transaction: PostgreSQL delivers a NOTIFY only
  when its transaction commits, after it, so a listener always finds the
  rows, and never hears of a rolled-back one. A rollback drops them, and
  so does the rollback of a savepoint for the samples written in it; an
  alarm undone by a savepoint's rollback is named all the same and
  simply not found.
* How it reads (`encode`, `decode`). Items separated by spaces, each a
  topic letter (``s`` sample, ``a`` alarm), the unit id, ``:`` and its keys
  separated by commas::

      s12:1710000000000000,1710000001000000 a12:57 s13:1710000000500000

  cut into payloads of at most `PAYLOAD_BYTES` (PostgreSQL's limit is
  8000), a unit's keys carried on into the next payload when one fills.
"""

# Bytes of one payload at most: below PostgreSQL's 8000.
PAYLOAD_BYTES = 7900
TOPICS = {"s": "sample", "a": "alarm"}
_LETTERS = {topic: letter for letter, topic in TOPICS.items()}


def encode(items):
    """The payloads of `items`, [(topic, unit id, [keys])], each at most
    PAYLOAD_BYTES: the items' texts, an item too long cut into several
    of the same unit, packed in order."""
    pieces = []
    for topic, unit_id, keys in items:
        head = piece = "%s%d:" % (_LETTERS[topic], unit_id)
        for key in keys:
            word = "%d" % key
            if piece == head:
                piece += word
            elif len(piece) + 1 + len(word) > PAYLOAD_BYTES:
                pieces.append(piece)
                piece = head + word
            else:
                piece += "," + word
        pieces.append(piece)
    payloads, current = [], ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > PAYLOAD_BYTES:
            payloads.append(current)
            current = piece
        else:
            current = current + " " + piece if current else piece
    if current:
        payloads.append(current)
    return payloads


def decode(payload):
    """[(topic, unit id, [keys])] of one payload; ValueError for text that
    is not one (another program's on the channel)."""
    items = []
    for item in payload.split():
        head, colon, keys = item.partition(":")
        topic = TOPICS.get(head[:1])
        if topic is None or not colon:
            raise ValueError("not a texmate_ds notice: %r" % item[:40])
        items.append((topic, int(head[1:]), [int(key) for key in keys.split(",")]))
    return items


class Outgoing:
    """What the open transaction of `db` will tell the other processes."""

    def __init__(self, db):
        self.db = db
        # [topic, unit id, [keys]] in the order written; consecutive
        # writes of one unit and topic share an item.
        self._items = []
        db.on_end.append(self._ended)

    def add(self, topic, unit_id, keys):
        """`keys` of `unit_id` written for `topic` in the open transaction,
        each once (`Alarms.add`: an alarm's id; the samples are told by the
        statement that stores them)."""
        items = self._items
        if items and items[-1][0] == topic and items[-1][1] == unit_id:
            items[-1][2].extend(keys)
        else:
            items.append([topic, unit_id, list(keys)])

    def payloads(self):
        """What to tell, as the transaction commits: `encode`'s payloads."""
        return encode(self._items) if self._items else []

    def _ended(self, committed):
        self._items = []
