"""`meterkit export`: the recorder's rows for a time range as CSV on standard output.

    meterkit export --db sqlite:///meterkit.db --from 2024-05-01 --to 2024-05-02 > day.csv

Columns: time (ISO 8601 UTC), meter, name, value (exact, as stored), unit; with --wide one row
per meter and time and one column per name ("voltage_l1 [V]"), the founding system's table. The range is
[from, to); a time without a UTC offset is taken as UTC, like the dongle's payloads.
"""
import argparse
import csv
import datetime
import os
import sys

from .arguments import usage_error
from .recorder import StoreError, open_store

COLUMNS = ("time", "meter", "name", "value", "unit")


def add_command(commands):
    export = commands.add_parser("export", help="write recorded values for a time range as CSV")
    export.add_argument("--db", default="sqlite:///meterkit.db", help="sqlite:///file.db or postgresql://...")
    export.add_argument("--from", dest="start", required=True, type=moment,
                        help="start, ISO 8601 (2024-05-01 or 2024-05-01T06:00+02:00), inclusive")
    export.add_argument("--to", dest="end", required=True, type=moment, help="end, ISO 8601, exclusive")
    export.add_argument("--meter", help="only this meter id")
    export.add_argument("--names", nargs="+", metavar="NAME",
                        help="only these names (power_in energy_in 1-0:1.8.0 ...)")
    export.add_argument("--wide", action="store_true",
                        help="one row per meter and time, one column per name (the founding system's table)")
    export.set_defaults(run=run)


def moment(text):
    """argparse type: ISO 8601 date or time -> epoch seconds (naive = UTC)."""
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not an ISO 8601 time: %r" % text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return int(value.timestamp())


def iso_utc(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(args, out=None):
    if args.end <= args.start:
        return usage_error("--to must be after --from")
    if args.db.startswith("sqlite:///") and not os.path.exists(args.db[len("sqlite:///"):]):
        return usage_error("no such database: %s" % args.db[len("sqlite:///"):])
    try:
        store = open_store(args.db)
    except StoreError as error:
        return usage_error(str(error))
    writer = csv.writer(out or sys.stdout, lineterminator="\n")
    rows = store.rows(args.start, args.end, args.meter, args.names)
    if getattr(args, "wide", False):
        _wide(writer, rows)
    else:
        writer.writerow(COLUMNS)
        for at, meter, name, value, unit in rows:
            writer.writerow((iso_utc(at), meter, name, value, unit))
    store.close()
    return 0


def _wide(writer, rows):
    """time,meter,<name [unit]>...: the values of one meter at one time in one row, names in the
    order first seen; a name a row lacks stays empty. Values exact, as stored."""
    names, units, table = [], {}, {}
    for at, meter, name, value, unit in rows:
        if name not in units:
            names.append(name)
            units[name] = unit
        table.setdefault((at, meter), {})[name] = value
    writer.writerow(["time", "meter"] + ["%s [%s]" % (n, units[n]) if units[n] else n for n in names])
    for (at, meter) in sorted(table):
        values = table[(at, meter)]
        writer.writerow([iso_utc(at), meter] + [values.get(n, "") for n in names])
