"""Store readings in SQLite (default, zero setup) or PostgreSQL / TimescaleDB, exactly.

    store = open_store("sqlite:///meter.db")          # or "postgresql://user@host/db"
    store.store_reading(reading, received=epoch)       # raw OBIS values + harmonized values
    store.store_harmonized("LGZ123", 1629055611, "power_in", "1.5")
    store.insert(rows)                     # [(meter, epoch s, name, value, unit)], one transaction
    for row in store.rows(from_s, to_s, meter=None, names=None): ...   # (time, meter, name, value, unit)

One table, `readings(meter, time, name, value, unit)`, primary key (meter, time, name): the
firmware's store-and-forward replays readings after an outage, and a replayed reading is stored
once. `name` is a harmonized name (power_in) or an OBIS code (1-0:1.7.0). Values are never floats:
TEXT in SQLite (the meter's digits as sent), NUMERIC in PostgreSQL (arbitrary precision, keeps
the scale). Time is epoch seconds in SQLite and TIMESTAMPTZ in PostgreSQL (recorder_pg.py: batched
inserts, hourly and daily aggregates, TimescaleDB where installed).
"""
import decimal
import sqlite3
import time

from meterkit.clock import epoch_seconds
from meterkit.exact import Exact
from meterkit.harmonize import QUANTITY, UNITS, harmonize

from dongle.topics import device_id


class StoreError(Exception):
    """A database URL we cannot use, or a database we cannot reach (`transient`: try again later);
    the message is for a person."""

    def __init__(self, message, transient=False):
        Exception.__init__(self, message)
        self.transient = transient


def open_store(url, **options):
    """sqlite:///relative.db, sqlite:////absolute.db, or postgresql://user:pass@host:port/db
    (options: PostgreSQL's, see recorder_pg.PostgresStore)."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///"):])
    if url.startswith(("postgresql://", "postgres://")):
        from .recorder_pg import PostgresStore
        return PostgresStore(url, **options)
    raise StoreError("unknown database URL %r: use sqlite:///file.db or postgresql://..." % url)


def number_text(value):
    """A meter value (Exact, int, Decimal or text) as exact decimal text; ValueError otherwise."""
    if isinstance(value, Exact):
        return str(value)
    if isinstance(value, bool) or not isinstance(value, (int, str, decimal.Decimal)):
        raise ValueError("not a number: %r" % (value,))
    try:
        number = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise ValueError("not a number: %r" % (value,))
    if not number.is_finite():
        raise ValueError("not a finite number: %r" % (value,))
    return format(number, "f")


def reading_time(reading, received=None):
    """Epoch seconds: the meter's clock when it states one, else when we received it, else now."""
    if reading.timestamp:
        try:
            return epoch_seconds(reading.timestamp)
        except (ValueError, IndexError):
            pass
    return int(received if received is not None else time.time())


def reading_rows(reading, received=None, obis=True):
    """The rows of a reading: its numeric values by OBIS code (unless obis is False) and its
    harmonized values, all at the reading's time."""
    meter = device_id(reading)
    at = reading_time(reading, received)
    rows = [(meter, at, code, str(v.value), v.unit or "")
            for code, v in reading.values if obis and isinstance(v.value, Exact)]
    rows += [(meter, at, name, str(value), harmonized_unit(name))
             for name, value in harmonize(reading)]
    return rows


def harmonized_row(meter_id, epoch_s, name, value_text):
    """(meter, time, name, value, unit) of one harmonized value; ValueError if not a number."""
    return meter_id, int(epoch_s), name, number_text(value_text), harmonized_unit(name)


def harmonized_unit(name):
    quantity = QUANTITY.get(name)
    return UNITS[quantity] if quantity else ""


class Store:
    """What both databases share; subclasses give the SQL dialect and the connection."""

    def store_reading(self, reading, received=None):
        """Every numeric value of the reading (by OBIS code) and its harmonized values; returns
        how many rows were new (0 for a replay)."""
        return self.insert(reading_rows(reading, received))

    def store_harmonized(self, meter_id, epoch_s, name, value_text):
        """One harmonized value, e.g. from a `<base>/<id>/<quantity>/<name>` message; 1 if new."""
        return self.insert([harmonized_row(meter_id, epoch_s, name, value_text)])

    def close(self):
        self.db.close()


class SqliteStore(Store):
    SCHEMA = ("CREATE TABLE IF NOT EXISTS readings (meter TEXT NOT NULL, time INTEGER NOT NULL, "
              "name TEXT NOT NULL, value TEXT NOT NULL, unit TEXT NOT NULL DEFAULT '', "
              "PRIMARY KEY (meter, time, name)) WITHOUT ROWID")

    def __init__(self, path):
        try:
            self.db = sqlite3.connect(path)
            self.db.execute("PRAGMA journal_mode=WAL")   # `meterkit export` reads while we write
            self.db.execute(self.SCHEMA)
            self.db.commit()
        except sqlite3.Error as error:
            raise StoreError("cannot open SQLite database %s: %s" % (path, error))

    def insert(self, rows):
        """Store rows in one transaction; returns how many were new."""
        before = self.db.total_changes
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?, ?)", rows)
        return self.db.total_changes - before

    def rows(self, from_s, to_s, meter=None, names=None):
        sql, args = _range_query("?", from_s, to_s, meter, names)
        for at, meter_id, name, value, unit in self.db.execute(sql, args):
            yield at, meter_id, name, value, unit


def _range_query(mark, from_s, to_s, meter, names, postgres=False):
    """SELECT for [from_s, to_s) with optional meter and names filters, oldest first."""
    at = "extract(epoch FROM time)::bigint" if postgres else "time"
    bound = "to_timestamp(%s)" % mark if postgres else mark
    where = ["time >= " + bound, "time < " + bound]
    args = [from_s, to_s]
    if meter:
        where.append("meter = " + mark)
        args.append(meter)
    if names:
        where.append("name IN (%s)" % ", ".join([mark] * len(names)))
        args += list(names)
    sql = ("SELECT %s, meter, name, value, unit FROM readings WHERE %s "
           "ORDER BY time, meter, name" % (at, " AND ".join(where)))
    return sql, args
