"""The recorder's PostgreSQL store: batched inserts, aggregates by the minute, hour and day,
TimescaleDB where it is installed.

    readings(meter, time, name, value, unit)               key (meter, time, name): stored once
    readings_minutely, readings_hourly, readings_daily     (meter, name, bucket, n, total, low,
                                                            high, first_time, first, last_time,
                                                            last), buckets in UTC

A batch of rows is one statement (`unnest` over five arrays) and one transaction, sorted by key so
that recorders inserting the same rows (a redelivery) wait for each other instead of deadlocking.

With TimescaleDB (the extension available when the database is first used): `readings` is a
hypertable of 1-day chunks, compressed after `compress_after_days` (segments by meter and name);
raw rows and minute buckets are dropped after `retention_days` (0: kept); the aggregates are
continuous aggregates, each built on the one before, that TimescaleDB refreshes itself.

Without it, the same columns are plain tables that the writers maintain, each row counted once:
a watermark splits time. `refresh_aggregates()` (any writer, every `aggregate_every` seconds, one
at a time: an advisory lock)
folds the rows in [watermark, now - lag) into the buckets and moves the watermark, holding its
row FOR UPDATE; every insert holds it FOR SHARE and folds its own new rows that fall before the
watermark (late: a dongle's replay after an outage) into the buckets in the same transaction. So
a row is folded by the job or by its insert, never both, never neither. Retention deletes old rows
in bounded batches.
"""
import datetime
import logging
import time

from .recorder import Store, StoreError, _range_query

log = logging.getLogger("meterkit.record")

UTC = datetime.timezone.utc
AGGREGATE_LOCK = 0x6D6B6167   # pg advisory lock key ("mkag"): one aggregation job at a time
SCHEMA_LOCK = 0x6D6B7363      # ("mksc"): one writer creates the tables, IF NOT EXISTS races
RETRIES = 5                   # a deadlock or serialization failure is retried this often

SCHEMA = ("CREATE TABLE IF NOT EXISTS readings (meter TEXT NOT NULL, time TIMESTAMPTZ NOT NULL, "
          "name TEXT NOT NULL, value NUMERIC NOT NULL, unit TEXT NOT NULL DEFAULT '', "
          "PRIMARY KEY (meter, time, name))")

BUCKETS = (("readings_minutely", "minute"), ("readings_hourly", "hour"), ("readings_daily", "day"))
AGGREGATE_COLUMNS = ("n BIGINT NOT NULL, total NUMERIC NOT NULL, low NUMERIC NOT NULL, "
                     "high NUMERIC NOT NULL, first_time TIMESTAMPTZ NOT NULL, "
                     "first NUMERIC NOT NULL, last_time TIMESTAMPTZ NOT NULL, "
                     "last NUMERIC NOT NULL")
PLAIN = tuple(
    "CREATE TABLE IF NOT EXISTS %s (meter TEXT NOT NULL, name TEXT NOT NULL, bucket TIMESTAMPTZ "
    "NOT NULL, %s, PRIMARY KEY (meter, name, bucket)) WITH (fillfactor = 70)"   # for HOT updates
    % (table, AGGREGATE_COLUMNS) for table, _ in BUCKETS) + (
    "CREATE INDEX IF NOT EXISTS readings_daily_by_name ON readings_daily (name, bucket)",
    "CREATE INDEX IF NOT EXISTS readings_time ON readings USING brin (time)",   # rows come in order
    "CREATE TABLE IF NOT EXISTS meterkit_aggregated (one BOOLEAN PRIMARY KEY DEFAULT TRUE "
    "CHECK (one), watermark TIMESTAMPTZ)",   # NULL: the job never ran
    "INSERT INTO meterkit_aggregated DEFAULT VALUES ON CONFLICT DO NOTHING")


def _partials(source, bucket, first, last, raw):
    """SELECT of one bucket size's partials: from raw rows (meter, time, name, value), or from
    the partials of a smaller bucket size. first/last: how the dialect picks the value at the
    earliest/latest time."""
    if raw:
        values = ("count(*) AS n, sum(value) AS total, min(value) AS low, max(value) AS high, "
                  "min(time) AS first_time, %s AS first, max(time) AS last_time, %s AS last"
                  % (first % ("value", "time"), last % ("value", "time")))
    else:
        values = ("sum(n) AS n, sum(total) AS total, min(low) AS low, max(high) AS high, "
                  "min(first_time) AS first_time, %s AS first, max(last_time) AS last_time, "
                  "%s AS last" % (first % ("first", "first_time"), last % ("last", "last_time")))
    return "SELECT meter, name, %s AS bucket, %s FROM %s GROUP BY meter, name, %s" % (
        bucket, values, source, bucket)


# TimescaleDB: continuous aggregates, each built on the one before (hierarchical, 2.9 or later)
TIMESCALE_BUCKETS = (   # (view, source, its time column, bucket, refreshed every, refresh window)
    ("readings_minutely", "readings", "time", "1 minute", "1 minute", "3 days"),
    ("readings_hourly", "readings_minutely", "bucket", "1 hour", "10 minutes", "7 days"),
    ("readings_daily", "readings_hourly", "bucket", "1 day", "1 hour", "31 days"))
TIMESCALE = (
    "CREATE EXTENSION IF NOT EXISTS timescaledb",
    "SELECT create_hypertable('readings', 'time', chunk_time_interval => INTERVAL '1 day', "
    "if_not_exists => TRUE, migrate_data => TRUE)",
    "ALTER TABLE readings SET (timescaledb.compress, "
    "timescaledb.compress_segmentby = 'meter, name', timescaledb.compress_orderby = 'time')",
    "SELECT add_compression_policy('readings', INTERVAL '%(compress)d days', "
    "if_not_exists => TRUE)",
) + tuple(statement for table, source, column, size, every, window in TIMESCALE_BUCKETS
          for statement in (
    "CREATE MATERIALIZED VIEW IF NOT EXISTS %s WITH (timescaledb.continuous) AS %s WITH NO DATA"
    % (table, _partials(source, "time_bucket(INTERVAL '%s', %s)" % (size, column),
                        "first(%s, %s)", "last(%s, %s)", source == "readings")),
    "SELECT add_continuous_aggregate_policy('%s', start_offset => INTERVAL '%s', end_offset => "
    "INTERVAL '%s', schedule_interval => INTERVAL '%s', if_not_exists => TRUE)"
    % (table, window, size, every)))
TIMESCALE_RETENTION = tuple("SELECT add_retention_policy('%s', INTERVAL '%%d days', "
                            "if_not_exists => TRUE)" % table
                            for table in ("readings", "readings_minutely"))

ROWS = ("SELECT m, to_timestamp(t), n, v::numeric, u FROM unnest(%(m)s::text[], %(t)s::bigint[], "
        "%(n)s::text[], %(v)s::text[], %(u)s::text[]) AS r(m, t, n, v, u) ORDER BY m, t, n")
INSERT = "INSERT INTO readings (meter, time, name, value, unit) " + ROWS + " ON CONFLICT DO NOTHING"


def _fold(source):
    """WITH-clause parts: the partials of the rows in `source` (a relation with meter, time, name,
    value) for each bucket size, folded into the aggregate tables: each bucket's row combined with
    what it holds, not replaced."""
    first, last = "(array_agg(%s ORDER BY %s))[1]", "(array_agg(%s ORDER BY %s DESC))[1]"
    parts, previous = [], source
    for table, size in BUCKETS:
        column = "time" if previous == source else "bucket"
        parts.append("%s AS (%s)" % (size, _partials(
            previous, "date_trunc('%s', %s, 'UTC')" % (size, column), first, last,
            previous == source)))
        previous = size
    for table, size in BUCKETS:
        parts.append(
            "%s_fold AS (INSERT INTO %s AS a SELECT * FROM %s ORDER BY 1, 2, 3 "
            "ON CONFLICT (meter, name, bucket) DO UPDATE SET n = a.n + excluded.n, "
            "total = a.total + excluded.total, low = least(a.low, excluded.low), "
            "high = greatest(a.high, excluded.high), "
            "first = CASE WHEN excluded.first_time < a.first_time THEN excluded.first "
            "ELSE a.first END, "
            "first_time = least(a.first_time, excluded.first_time), "
            "last = CASE WHEN excluded.last_time > a.last_time THEN excluded.last ELSE a.last END, "
            "last_time = greatest(a.last_time, excluded.last_time))" % (size, table, size))
    return ", ".join(parts)


INSERT_FOLDING_LATE = (
    "WITH new AS (" + INSERT + " RETURNING meter, time, name, value), "
    "late AS (SELECT * FROM new WHERE time < %(watermark)s::timestamptz), "
    + _fold("late") + " SELECT count(*) FROM new")
FOLD_WINDOW = (
    "WITH window_rows AS (SELECT meter, time, name, value FROM readings "
    "WHERE time >= %(start)s AND time < %(end)s), " + _fold("window_rows")
    + " UPDATE meterkit_aggregated SET watermark = %(end)s")


class PostgresStore(Store):
    def __init__(self, url, retention_days=0, compress_after_days=7, aggregate_every=60):
        try:
            import psycopg
        except ImportError:
            raise StoreError("PostgreSQL needs psycopg: pip install 'meterkit[postgresql]'")
        self.errors = psycopg.Error
        self.transient = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
        self.retention_days = retention_days
        self.aggregate_every = aggregate_every
        self.next_fold = time.monotonic() + aggregate_every
        try:
            self.db = psycopg.connect(url, autocommit=True)
            self.db.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                self.db.execute(SCHEMA)
                self.timescale = self._timescale(compress_after_days)
                if not self.timescale:
                    for statement in PLAIN:
                        self.db.execute(statement)
            finally:
                self.db.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
        except psycopg.Error as error:
            raise StoreError("cannot use PostgreSQL database: %s" % str(error).strip(),
                             transient=isinstance(error, psycopg.OperationalError))

    def _timescale(self, compress_after_days):
        """TimescaleDB's hypertable, compression, retention and continuous aggregates, where the
        extension is installed and the aggregates are not plain tables already."""
        found = self.db.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
        plain = self.db.execute(
            "SELECT 1 FROM pg_tables WHERE tablename = 'readings_hourly'").fetchone()
        if not found or plain:
            return False
        for statement in TIMESCALE:
            self.db.execute(statement.replace("%(compress)d", str(int(compress_after_days))))
        for statement in TIMESCALE_RETENTION if self.retention_days else ():
            self.db.execute(statement % int(self.retention_days))
        return True

    def insert(self, rows):
        """Store rows in one transaction (late ones folded into the aggregates); returns how many
        were new. A deadlock or serialization failure is retried; other errors are raised."""
        if not rows:
            return 0
        try:
            return self._insert(rows)
        finally:
            self.maintain()

    def _insert(self, rows):
        columns = list(zip(*rows))
        args = dict(zip("mtnvu", (list(c) for c in columns)))
        for attempt in range(RETRIES):
            try:
                with self.db.transaction():
                    if self.timescale:   # the continuous aggregates track changes themselves
                        return self.db.execute(INSERT, args).rowcount
                    args["watermark"] = self.db.execute(
                        "SELECT watermark FROM meterkit_aggregated FOR SHARE").fetchone()[0]
                    return self.db.execute(INSERT_FOLDING_LATE, args).fetchone()[0]
            except self.transient as error:
                if attempt == RETRIES - 1:
                    raise
                log.info("retrying a batch of %d rows: %s", len(rows), str(error).split("\n")[0])

    def maintain(self):
        """Every aggregate_every seconds: refresh_aggregates(). Every writer calls it (each insert
        does, an idle recorder too), so the aggregates keep up whoever records; errors are logged,
        the next round tries again."""
        if self.timescale or time.monotonic() < self.next_fold:
            return
        self.next_fold = time.monotonic() + self.aggregate_every
        try:
            self.refresh_aggregates()
        except self.errors as error:
            log.warning("could not update the aggregates: %s", str(error).strip())

    def refresh_aggregates(self, until=None, lag_s=10, step_s=10):
        """Fold the rows up to `until` (epoch s; default now - lag_s) into the plain aggregates,
        step_s of time per transaction (inserts wait while one holds the watermark: keep it
        short); apply the retention. Returns the watermark reached (epoch
        s), or None when another recorder is at it or TimescaleDB does it."""
        if self.timescale:
            return None
        end = until if until is not None else datetime.datetime.now(UTC).timestamp() - lag_s
        end = datetime.datetime.fromtimestamp(int(end), UTC)
        while True:
            with self.db.transaction():
                if not self.db.execute("SELECT pg_try_advisory_xact_lock(%s)",
                                       (AGGREGATE_LOCK,)).fetchone()[0]:
                    return None
                start = self.db.execute(
                    "SELECT watermark FROM meterkit_aggregated FOR UPDATE").fetchone()[0]
                if start is None:   # first run: from the oldest row there is
                    start = self.db.execute("SELECT min(time) FROM readings").fetchone()[0] or end
                if start >= end:
                    break
                stop = min(end, start + datetime.timedelta(seconds=step_s))
                self.db.execute(FOLD_WINDOW, {"start": start, "end": stop})
            if stop >= end:
                start = stop
                break
        if self.retention_days:
            self._expire(start)
        return int(start.timestamp())

    def _expire(self, watermark, batch=20000):
        """Delete raw rows and minute buckets past the retention (only what is folded already)."""
        cutoff = min(watermark, datetime.datetime.now(UTC)
                     - datetime.timedelta(days=self.retention_days))
        for table, column in (("readings", "time"), ("readings_minutely", "bucket")):
            deleted = -1
            while deleted:
                deleted = self.db.execute(
                    "DELETE FROM %s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %s WHERE %s < %%s "
                    "LIMIT %%s))" % (table, table, column), (cutoff, batch)).rowcount

    def rows(self, from_s, to_s, meter=None, names=None):
        sql, args = _range_query("%s", from_s, to_s, meter, names, postgres=True)
        for at, meter_id, name, value, unit in self.db.execute(sql, args):
            yield int(at), meter_id, name, format(value, "f"), unit
