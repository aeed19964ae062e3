"""The recorder's loop: MQTT messages in, one database transaction per batch, acknowledgements
after the commit; and recorders that share the work as a group.

Sessions are MQTT 5 with clean start off and a session that never expires, QoS 1, and a receive
maximum large enough for a whole batch to be in flight (MQTT 3's in-flight window is the broker's
setting: 20 messages in mosquitto). A message is acknowledged after its batch is committed, so a
recorder that dies loses nothing: the broker sends the unacknowledged ones again.

A group (`--group G`) subscribes with `$share/G/...`: the broker hands each message to one member.
What mosquitto 2.0 does with a member that goes away (checked in tests/test_fleet.py): its
in-flight messages stay in its session, and the round robin goes on giving it its share of new
messages, queued in that session; nothing moves to the others. A member that comes back with the
same client id gets all of them. One that does not come back would leave them there, so the
members watch each other: each publishes `online` (retained) on
`meterkit/recorders/G/<client id>` and leaves `offline` as its will (and says it when it stops).
When a member has been offline for `adopt_after` seconds, the next live member in client-id order
adopts its session: it connects with that client id (resuming the session), unsubscribes it from
the group (nothing new is queued there), publishes a marker to a topic only that session
subscribes to, stores everything up to the marker, says `adopted` and ends the session. Only a
live, subscribed member unsubscribes another, so the group never ends up with nobody subscribed.
If the member comes back meanwhile, its connection takes the session over (the adopter stops),
and it subscribes again. Messages stored twice in all this (a redelivery) are stored once: the
key is meter + time + name.
"""
import logging
import queue
import signal
import threading
import time
import uuid

from meterkit.errors import FormatError

from .record import broker_address

log = logging.getLogger("meterkit.record")

GROUPS = "meterkit/recorders"   # <GROUPS>/<group>/<client id>: online | offline | adopted, retained
LINGER_S = 0.2                  # a batch waits at most this long for more messages
NEVER = 0xFFFFFFFF              # session expiry: the broker keeps our queue until we are back
KEEPALIVE_S = 30
STATS_EVERY_S = 60


class Session:
    """One MQTT session whose messages the service stores: our own, or a lost member's."""

    def __init__(self, service, client_id, adopting=False):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.service, self.client_id, self.adopting = service, client_id, adopting
        self.generation = 0          # +1 per connection: a message is acknowledged on its own one
        self.connected = False
        self.closed = threading.Event()
        self.finished = False
        self.token = uuid.uuid4().hex.encode()   # an adopter's marker
        self.messages = 0
        host, port, user, password, tls = broker_address(service.settings["mqtt"])
        self.where = "%s:%d" % (host, port)
        self.client = client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
            manual_ack=True, reconnect_on_failure=not adopting)
        if user:
            client.username_pw_set(user, password)
        if tls:
            client.tls_set()
        if service.group and not adopting:
            client.will_set(service.status_topic(client_id), b"offline", qos=1, retain=True)
        client.reconnect_delay_set(1, 30)
        client.on_connect, client.on_connect_fail = self._on_connect, self._on_connect_fail
        client.on_subscribe, client.on_unsubscribe = self._on_subscribe, self._on_unsubscribe
        client.on_message, client.on_disconnect = self._on_message, self._on_disconnect
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = NEVER
        properties.ReceiveMaximum = service.receive_maximum
        client.connect_async(host, port, keepalive=KEEPALIVE_S, clean_start=False,
                             properties=properties)
        client.loop_start()

    # paho's network thread: the callbacks only subscribe, publish and queue
    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            log.error("broker %s refused %s: %s", self.where, self.client_id, reason)
            return
        self.generation += 1
        self.connected = True
        if self.adopting:
            if not flags.session_present:   # nothing queued there: done
                self.service.queue.put((self, self.generation, None))
                return
            client.subscribe(self.service.drain_topic(self.client_id), qos=1)
            return   # then: unsubscribe from the group, then the marker
        client.subscribe([(topic, 1) for topic in self.service.subscriptions()])
        if self.service.group:
            client.publish(self.service.status_topic(self.client_id), b"online", qos=1, retain=True)
        log.info("connected to %s (session %s)", self.where,
                 "resumed" if flags.session_present else "new")

    def _on_subscribe(self, client, userdata, mid, reasons, properties):
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            log.error("the broker refused a subscription of %s: %s", self.client_id,
                      ", ".join(refused))
        if self.adopting:
            client.unsubscribe(self.service.data_topics())
        else:
            log.info("subscribed")

    def _on_unsubscribe(self, client, userdata, mid, reasons, properties):
        if self.adopting:   # everything the group gave this session is queued before the marker
            client.publish(self.service.drain_topic(self.client_id), self.token, qos=1)

    def _on_message(self, client, userdata, message):
        self.service.queue.put((self, self.generation, message))

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        self.connected = False
        if self.adopting:
            self.closed.set()
        elif not self.service.stopping:
            log.warning("disconnected from %s (%s); reconnecting", self.where, reason)

    def _on_connect_fail(self, client, userdata):
        if self.adopting:
            self.closed.set()
        else:
            log.warning("broker %s unreachable; retrying", self.where)

    # the service's thread
    def ack(self, generation, message):
        if generation == self.generation and self.connected:
            self.client.ack(message.mid, message.qos)

    def finish(self):
        """An adopted session is drained: say so and let the broker drop the session."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.finished = True
        try:
            self.client.publish(self.service.status_topic(self.client_id), b"adopted", qos=1,
                                retain=True).wait_for_publish(10)
        except (RuntimeError, ValueError):   # taken over meanwhile: its owner is back
            pass
        properties = Properties(PacketTypes.DISCONNECT)
        properties.SessionExpiryInterval = 0
        self.client.disconnect(properties=properties)
        self.client.loop_stop()

    def stop(self, say_offline):
        if say_offline and self.connected:
            try:
                self.client.publish(self.service.status_topic(self.client_id), b"offline", qos=1,
                                    retain=True).wait_for_publish(5)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()


class Service:
    def __init__(self, settings, store, recorder):
        self.settings, self.store, self.recorder = settings, store, recorder
        self.group = settings["group"]
        self.client_id = settings["client_id"]
        self.batch_rows = settings["batch"]
        self.receive_maximum = max(100, min(65535, 2 * self.batch_rows))
        self.queue = queue.Queue()
        self.members = {}     # client id -> (status, monotonic time we heard it)
        self.adopters = {}    # client id -> Session
        self.stopping = False
        self.failed = None
        self.counts = dict.fromkeys(("messages", "rows", "new", "skipped"), 0)

    # -- topics -----------------------------------------------------------------------------------

    def data_topics(self):
        share = "$share/%s/" % self.group if self.group else ""
        return [share + topic for topic in self.recorder.topics()]

    def subscriptions(self):
        return self.data_topics() + (["%s/%s/+" % (GROUPS, self.group)] if self.group else [])

    def status_topic(self, client_id):
        return "%s/%s/%s" % (GROUPS, self.group, client_id)

    def drain_topic(self, client_id):
        return self.status_topic(client_id) + "/drain"

    # -- the loop ---------------------------------------------------------------------------------

    def run(self):
        def stop(signum, frame):
            self.stopping = True
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("recording %s into %s%s", ", ".join(self.data_topics()), self.settings["db"],
                 " as %s of group %s" % (self.client_id, self.group) if self.group else "")
        self.own = Session(self, self.client_id)
        maintain = getattr(self.store, "maintain", None)   # PostgreSQL: the aggregates
        next_stats = time.monotonic() + STATS_EVERY_S
        while not self.stopping and self.failed is None:
            items, rows, control = self._collect()
            if items:
                self._flush(items, rows)
            if control and self.failed is None:
                self._control(*control)
            self._housekeeping()
            if maintain and self.failed is None:
                maintain()
            if time.monotonic() >= next_stats:
                next_stats += STATS_EVERY_S
                log.info("%(new)d new rows of %(rows)d from %(messages)d messages, %(skipped)d "
                         "skipped, so far", self.counts)
        for session in self.adopters.values():   # unfinished: their sessions stay for the next try
            session.stop(say_offline=False)
        self.own.stop(say_offline=bool(self.group))   # after adopt_after, a member drains us
        return 1 if self.failed is not None else 0

    def _collect(self):
        """Messages for one transaction: up to batch rows, or what came within LINGER_S of the
        first; a control message (group status, a drain marker) ends the batch."""
        items, rows, deadline = [], [], None
        while len(rows) < self.batch_rows and not self.stopping:
            wait = 0.5 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            try:
                session, generation, message = self.queue.get(timeout=wait)
            except queue.Empty:
                break
            if message is None or message.topic.startswith(GROUPS + "/"):
                return items, rows, (session, generation, message)
            if deadline is None:
                deadline = time.monotonic() + LINGER_S
            session.messages += 1
            items.append((session, generation, message))
            try:
                rows += self.recorder.rows(message.topic, message.payload)
            except FormatError as error:
                self.counts["skipped"] += 1
                log.warning("skipped %s (%d so far): %s", message.topic, self.counts["skipped"],
                            error.message)
        return items, rows, None

    def _flush(self, items, rows):
        try:
            new = self.store.insert(rows)
        except Exception as error:   # the database failed: acknowledge nothing, stop
            log.error("could not store %d rows: %s; stopping, the broker keeps the messages",
                      len(rows), str(error).strip())
            self.failed = error
            return
        self.counts["messages"] += len(items)
        self.counts["rows"] += len(rows)
        self.counts["new"] += new
        for session, generation, message in items:
            session.ack(generation, message)

    def _control(self, session, generation, message):
        if message is not None:
            session.ack(generation, message)
        if message is None or message.topic.endswith("/drain"):
            if session.adopting and (message is None or message.payload == session.token):
                session.finish()
                self.members[session.client_id] = ("adopted", time.monotonic())
                log.info("adopted %s: its queue is drained (%d messages)", session.client_id,
                         session.messages)
            return
        member = message.topic.rsplit("/", 1)[1]
        status = message.payload.decode(errors="replace")
        if self.members.get(member, (None,))[0] != status:
            self.members[member] = (status, time.monotonic())
            if member != self.client_id:
                log.info("group member %s is %s", member, status)

    def _housekeeping(self):
        now = time.monotonic()
        for member, session in list(self.adopters.items()):
            if session.closed.is_set() or session.finished:
                del self.adopters[member]
                if not session.finished:
                    log.warning("adopting %s was cut short; trying again later", member)
                    status = self.members.get(member, ("offline",))[0]
                    self.members[member] = (status, now)
        if not self.group or not self.own.connected:
            return   # only a live, subscribed member takes another's queue
        for member, (status, since) in list(self.members.items()):
            if (member == self.client_id or status != "offline" or member in self.adopters
                    or now - since < self.settings["adopt_after"]
                    or self._adopter_for(member) != self.client_id):
                continue
            log.info("%s has been offline for %d s: draining its queue", member, now - since)
            self.adopters[member] = Session(self, member, adopting=True)

    def _adopter_for(self, member):
        """The live member after `member` in client-id order (every member computes the same)."""
        live = sorted(set(m for m, (status, _) in self.members.items() if status == "online")
                      | {self.client_id})
        return next((m for m in live if m > member), live[0])
