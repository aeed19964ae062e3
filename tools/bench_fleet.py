"""`make bench` (tools/bench_fleet.py): a fleet of dongles into PostgreSQL, on this machine.

1. Live: 1000 simulated DSMR 5 dongles (`meterkit simulate --fleet`, a reading a second: 19
   harmonized values and the state document) through a real mosquitto into a real PostgreSQL
   (fsync on) with 1, 2 and 4 recorders in a group (`--from-state`): readings/s stored, how long
   after the last publish the database had every row, and the CPU each part used.
2. Capacity: the same recorders stopped (SIGSTOP) while the fleet publishes a backlog as fast as
   it can, then let go: readings/s while they drain it, and the CPU of each part per reading,
   which says where the ceiling is (the machine is shared: the CPU of other work is shown too).
   Once more with the per-value topics (19 messages per reading).
3. Storage: bytes per row and per meter-day (DSMR 5 at 1 s) of the raw table and the aggregates.
4. The Grafana queries, in ms (median of 5): a day of one meter (the dashboard's minute averages,
   and all raw rows), and a month of 1000 meters from the daily aggregate (the fleet dashboard).

    .venv/bin/python tools/bench_fleet.py [--quick]
"""
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "host"), str(ROOT / "firmware" / "lib")]

from broker import Broker  # noqa: E402
from postgres import PostgresServer, grafana_sql  # noqa: E402

DONGLES = 1000
VALUES = 19                     # harmonized values of a DSMR 5 reading
TICK = os.sysconf("SC_CLK_TCK")
DAY = 86400


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as file:
                fields = file.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / TICK


def busy_seconds():
    """CPU seconds every process on the machine has used (ours and the others')."""
    with open("/proc/stat") as file:
        fields = [int(value) for value in file.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK   # all but idle and iowait


def postgres_pids(server):
    parent = server.postmaster_pid()
    pids = [parent]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as file:
                    if int(file.read().rsplit(")", 1)[1].split()[1]) == parent:
                        pids.append(int(entry))
            except (OSError, IndexError):
                pass
    return pids


class Bench:
    def __init__(self, broker, server, quick):
        import psycopg
        self.broker, self.server = broker, server
        self.url = "mqtt://127.0.0.1:%d" % broker.port
        self.db = psycopg.connect(server.url, autocommit=True)
        self.live_s = 10 if quick else 30
        self.backlog = 10 if quick else 30
        self.clock = self.run_start = 0   # the last run's meter clocks: where they ended, began
        self.started = []                 # every process we started: ended whatever happens
        self.logs = tempfile.mkdtemp(prefix="meterkit-bench-")

    def rows(self):
        """The current run's rows (its meter clocks are its own: a BRIN range, not the table)."""
        return self.db.execute("SELECT count(*) FROM readings WHERE time >= to_timestamp(%s)",
                               (self.run_start,)).fetchone()[0]

    def recorders(self, count, run, from_state=True):
        procs = []
        for n in range(count):
            log = open(os.path.join(self.logs, "%s-%d.log" % (run, n)), "w+")
            argv = [sys.executable, "-m", "meterkit_host", "record", "--mqtt", self.url, "--db",
                    self.server.url, "--group", run, "--client-id", "%s-%d" % (run, n),
                    "--adopt-after", "600", "--aggregate-every", "10"]   # the job runs too
            argv += ["--from-state"] if from_state else []
            procs.append((self.start(argv, stderr=log), log))
        for proc, log in procs:
            deadline = time.monotonic() + 60
            while "subscribed" not in open(log.name).read():
                assert proc.poll() is None and time.monotonic() < deadline, open(log.name).read()
                time.sleep(0.1)
        return procs

    def fleet(self, readings, speed):
        """The fleet's meter clocks start now (after the last run's), as a live fleet's do: rows
        newer than the aggregates' watermark, folded by the job and not by each insert."""
        self.clock = max(int(time.time()), self.clock) + 1
        start, self.clock = self.clock, self.clock + readings
        return self.start([sys.executable, "-m", "meterkit_host", "simulate", "--fleet",
                           str(DONGLES), "--mqtt", self.url, "--profile", "dsmr5", "--count",
                           str(readings), "--speed", str(speed), "--start", str(start)],
                          stdout=subprocess.PIPE, text=True)

    def start(self, *args, **kwargs):
        proc = subprocess.Popen(*args, **kwargs)
        self.started.append(proc)
        return proc

    def end(self):
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()

    def parts(self, recorders, simulator=None):
        parts = {"recorders": [p.pid for p, _ in recorders],
                 "PostgreSQL": postgres_pids(self.server), "mosquitto": [self.broker.process.pid]}
        if simulator:
            parts["simulator"] = [simulator.pid]
        used = dict((name, cpu_seconds(pids)) for name, pids in parts.items())
        used["other work"] = busy_seconds() - sum(used.values())   # the machine is shared
        return used, parts

    def wait_rows(self, target, timeout=600):
        """When the run's rows are all there; counting costs the database little (once a second
        until 95 % are in, then every 50 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.rows()
            if found >= target:
                return time.monotonic()
            assert time.monotonic() < deadline, "stuck at %d of %d rows" % (found, target)
            time.sleep(1 if found < 0.95 * target else 0.05)

    def live(self, count):
        recorders = self.recorders(count, "live%d" % count)
        target = DONGLES * self.live_s * VALUES
        simulator = self.fleet(self.live_s, 1)
        self.run_start, before = self.clock - self.live_s, 0
        cpu0, pids = self.parts(recorders, simulator)
        began = time.monotonic()
        cpu_sim, first = 0, None
        while simulator.poll() is None:   # sample the simulator before it exits
            cpu_sim = cpu_seconds(pids["simulator"])
            if first is None and self.rows() > before:
                first = time.monotonic()
            time.sleep(0.1 if first is None else 0.5)
        published = time.monotonic()
        report = simulator.stdout.read().strip()
        done = self.wait_rows(target)
        cpu1, _ = self.parts(recorders)
        cpu1["other work"] -= cpu_sim
        cpu1["simulator"] = cpu_sim
        self.stop(recorders)
        return {"recorders": count, "readings_s": DONGLES * self.live_s / (done - first),
                "caught_up_s": done - published, "fleet": report,
                "cores": dict((k, (cpu1[k] - cpu0[k]) / (done - began)) for k in cpu1)}

    def capacity(self, count, from_state=True):
        run = "drain%d%s" % (count, "" if from_state else "h")
        backlog = self.backlog if from_state else max(5, self.backlog // 3)   # 19 x the messages
        recorders = self.recorders(count, run, from_state)
        for proc, _ in recorders:
            proc.send_signal(signal.SIGSTOP)
        target = DONGLES * backlog * VALUES
        simulator = self.fleet(backlog, 1000)
        self.run_start = self.clock - backlog
        assert simulator.wait() == 0
        queued = simulator.stdout.read().strip()
        cpu0, _ = self.parts(recorders)
        began = time.monotonic()
        for proc, _ in recorders:
            proc.send_signal(signal.SIGCONT)
        done = self.wait_rows(target)
        cpu1, _ = self.parts(recorders)
        self.stop(recorders)
        return {"recorders": count, "messages": "state" if from_state else "per value",
                "readings_s": DONGLES * backlog / (done - began), "backlog": queued,
                "cores": dict((k, (cpu1[k] - cpu0[k]) / (done - began)) for k in cpu1),
                "ms_per_reading": dict((k, (cpu1[k] - cpu0[k]) * 1000 / (DONGLES * backlog))
                                       for k in ("recorders", "PostgreSQL", "mosquitto"))}

    def stop(self, recorders):
        """Stop a run's recorders and end their sessions: the next run's messages go to its own."""
        import paho.mqtt.client as mqtt
        for proc, _ in recorders:
            proc.terminate()
        for proc, log in recorders:
            proc.wait(timeout=60)
            client_id = open(log.name).read().split(" as ", 1)[1].split()[0]
            log.close()
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                 protocol=mqtt.MQTTv5)
            client.connect("127.0.0.1", self.broker.port, clean_start=True)   # expiry 0
            client.loop_start()
            client.disconnect()
            client.loop_stop()

    def storage(self):
        self.db.execute("VACUUM ANALYZE")
        sizes = {}
        for table, rows_per_day in (("readings", VALUES * DAY),
                                    ("readings_minutely", VALUES * 1440),
                                    ("readings_hourly", VALUES * 24), ("readings_daily", VALUES)):
            size, rows = self.db.execute("SELECT pg_total_relation_size('%s'), "
                                         "(SELECT count(*) FROM %s)" % (table, table)).fetchone()
            sizes[table] = (size / rows, size / rows * rows_per_day)
        return sizes

    def grafana(self):
        """A day of one meter (raw and folded by the job), a month of 1000 meters (daily)."""
        from meterkit_host.recorder import open_store
        day0 = 1704067200   # 2024-01-01T00:00Z, before everything else
        names = ("power_in power_out energy_in_t1 energy_in_t2 energy_out_t1 energy_out_t2 "
                 "voltage_l1 voltage_l2 voltage_l3 current_l1 current_l2 current_l3 power_in_l1 "
                 "power_in_l2 power_in_l3 power_out_l1 power_out_l2 power_out_l3 gas").split()
        store = open_store(self.server.url)
        last = self.db.execute("SELECT max(time) FROM readings").fetchone()[0]
        store.refresh_aggregates(until=int(last.timestamp()) + 1)   # the runs' rows
        began = time.monotonic()
        self.db.execute(
            "INSERT INTO readings SELECT '45303035333438333032303030313233', "
            "to_timestamp(%s + s), name, "
            "CASE WHEN name LIKE 'energy%%' OR name = 'gas' THEN 15000 + s * 0.001 "
            "WHEN name LIKE 'voltage%%' THEN 230 + (s %% 50) / 10.0 ELSE s %% 3000 END, '' "
            "FROM generate_series(0, %s) s, unnest(%s::text[]) name", (day0, DAY - 1, list(names)))
        generated = time.monotonic() - began
        self.db.execute("UPDATE meterkit_aggregated SET watermark = to_timestamp(%s)", (day0,))
        began = time.monotonic()
        store.refresh_aggregates(until=day0 + DAY, step_s=3600)
        folded = time.monotonic() - began
        self.db.execute(   # a month of daily buckets for 1000 meters
            "INSERT INTO readings_daily SELECT 'fleet-' || m, name, to_timestamp(%s) + d * "
            "INTERVAL '1 day', 86400, 0, 1000 * d, 1000 * d + m, to_timestamp(%s), 0, "
            "to_timestamp(%s), 0 FROM generate_series(1, 1000) m, generate_series(0, 30) d, "
            "unnest(%s::text[]) name",
            (day0, day0, day0, list(names)))
        self.db.execute("VACUUM ANALYZE")
        dashboards = ROOT / "deploy" / "grafana" / "dashboards"
        meter = json.loads((dashboards / "meterkit-postgresql.json").read_text())
        fleet = json.loads((dashboards / "meterkit-fleet.json").read_text())
        power = meter["panels"][0]["targets"][0]["rawSql"]
        raw = ("SELECT time, value FROM readings WHERE meter = '$meter' AND name = 'power_in' "
               "AND $__timeFilter(time) ORDER BY 1")
        timings = [("a day of one meter, dashboard (minute averages)", power, DAY, 1440),
                   ("a day of one meter, every raw row", raw, DAY, DAY),
                   ("a month of one meter, energy per day",
                    meter["panels"][1]["targets"][0]["rawSql"], 31 * DAY, 1)]
        timings += [("a month of 1000 meters: " + panel["title"].lower(),
                     panel["targets"][0]["rawSql"], 31 * DAY, None) for panel in fleet["panels"]]
        results = []
        for title, sql, span, _ in timings:
            sql = grafana_sql(sql, day0, day0 + span - 1, "45303035333438333032303030313233")
            found = self.db.execute(sql).fetchall()
            runs = []
            for _ in range(5):
                began = time.perf_counter()
                self.db.execute(sql).fetchall()
                runs.append((time.perf_counter() - began) * 1000)
            results.append((title, statistics.median(runs), len(found)))
        return {"generated_s": generated, "fold_rows_s": VALUES * DAY / folded, "queries": results}


def table(title, header, rows):
    print("\n" + title)
    print("  " + " | ".join(header))
    for row in rows:
        print("  " + " | ".join(row))


def cores(figures):
    return ", ".join("%s %.2f" % (name, value) for name, value in figures.items())


def main():
    quick = "--quick" in sys.argv
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))   # clean up on a kill too
    with tempfile.TemporaryDirectory(prefix="meterkit-bench-broker-") as directory, \
            Broker(pathlib.Path(directory), extra_conf="max_queued_messages 0\n") as broker, \
            PostgresServer(settings=("fsync=on",)) as server:
        bench = Bench(broker, server, quick)
        try:
            report(bench, quick)
        finally:
            bench.end()


def report(bench, quick):
    print("fleet bench: %d DSMR 5 dongles (a reading a second, %d values + the state document), "
          "mosquitto, PostgreSQL %s (fsync on), %d cores%s"
          % (DONGLES, VALUES, bench.db.execute("SHOW server_version").fetchone()[0],
             os.cpu_count(), ", --quick" if quick else ""))
    live = [bench.live(count) for count in (1, 2, 4)]
    table("1. live, %d s at 1 reading/s per dongle (--from-state)" % bench.live_s,
          ("recorders", "readings/s stored", "all stored after the last publish", "cores used"),
          [(str(r["recorders"]), "%.0f" % r["readings_s"], "%.1f s" % r["caught_up_s"],
            cores(r["cores"])) for r in live])
    print("  simulator: " + live[0]["fleet"])
    drains = [bench.capacity(count) for count in (1, 2, 4)]
    drains += [bench.capacity(count, from_state=False) for count in (1, 4)]
    table("2. capacity: a backlog of %d readings per dongle drained" % bench.backlog,
          ("recorders", "messages", "readings/s", "rows/s", "cores used"),
          [(str(r["recorders"]), r["messages"], "%.0f" % r["readings_s"],
            "%.0f" % (r["readings_s"] * VALUES), cores(r["cores"])) for r in drains])
    best = max(drains, key=lambda r: r["readings_s"])
    print("  best: %.0f readings/s (%.1fx the fleet's 1000/s) with %d recorders; other work "
          "on the machine meanwhile: %.2f of %d cores"
          % (best["readings_s"], best["readings_s"] / DONGLES, best["recorders"],
             best["cores"]["other work"], os.cpu_count()))
    for mode in ("state", "per value"):
        runs = [r for r in drains if r["messages"] == mode]
        cost = dict((part, statistics.median(r["ms_per_reading"][part] for r in runs))
                    for part in ("recorders", "PostgreSQL", "mosquitto"))
        print("  CPU per reading (%s): %s; with the %d cores to itself the ceiling would be "
              "%.0f readings/s, set by %s" % (
                  mode, ", ".join("%s %.3f ms" % item for item in cost.items()), os.cpu_count(),
                  os.cpu_count() * 1000 / sum(cost.values()), max(cost, key=cost.get)))
    grafana = bench.grafana()
    sizes = bench.storage()
    table("3. storage (DSMR 5 at 1 s: %d rows per meter-day raw)" % (VALUES * DAY),
          ("table", "bytes/row (with indexes)", "MB per meter-day"),
          [(name, "%.0f" % per_row, "%.2f" % (per_day / 1e6)) for name, (per_row, per_day)
           in sizes.items()])
    table("4. Grafana queries (one meter-day = %d raw rows, folded by the job at %.0f rows/s)"
          % (VALUES * DAY, grafana["fold_rows_s"]),
          ("query", "ms", "rows"),
          [(title, "%.1f" % ms, str(rows)) for title, ms, rows in grafana["queries"]])


if __name__ == "__main__":
    main()
