"""The tutorial's producer: sends user actions from an online shop to Kafka.

Like in the tutorial, each event is a Python dict serialized to JSON by
kafka-python, with no key. The stream is a mix of views, clicks, cart
additions and purchases in every shape the tutorial's readers send:

  * the tutorial's two literal events, first, exactly as the tutorial
    writes them;
  * then generated events with a unique ``event_id`` (``<id-prefix>-<n>``,
    n counting every event from 1), their action under our names or the
    tutorial's aliases (``added_to_cart``, ``clicked``, ``checkout``...),
    now and then one no shop name stands for (``added_to_wishlist``), and
    shapes taking turns: the shop's own (price and timestamp), the
    tutorial's (no price, no timestamp), no product at all, and a product
    without its name.

``--bad N`` also sends N records nobody can read (``not json``, an event
without ``user_id``...), right after the tutorial's events, through a
producer without the JSON serializer, as a buggy client would: the
``action-enricher`` deployment sets them aside in its dead-letter topic.

Run it with the tutorial's virtualenv (``make setup`` makes it):

    deploy/demo/tutorial/python.sh deploy/demo/tutorial/producer.py --count 20
"""

import argparse
import json
import random
import signal
import sys
import time

from kafka import KafkaProducer

# The tutorial's own events, sent first and exactly as written there.
TUTORIAL_EVENTS = [
    {"user_id": 123, "action": "added_to_cart", "product_id": 456, "product_name": "Camiseta de Trekking"},
    {"event_id": 123, "action": "product_added_to_cart", "user_id": 456},
]

# A few products of the tutorial's trekking shop: (id, name, price).
PRODUCTS = [
    (456, "Camiseta de Trekking", 19.9),
    (101, "Calcetines de Merino", 14.5),
    (103, "Zapatillas de Trail", 129.95),
    (104, "Chaqueta Impermeable", 89.0),
    (105, "Linterna Frontal", 34.99),
    (108, "Mochila de Trekking", 899.0),
    (127, "Tienda de Campaña", 629.0),
]

# Every name an action goes by: ours first, then the aliases the
# tutorial's readers use. The enricher maps them all back to ours.
ACTION_NAMES = {
    "view": ["view", "page_view", "product_view", "viewed"],
    "click": ["click", "clicked", "product_click"],
    "add_to_cart": ["add_to_cart", "added_to_cart", "product_added_to_cart", "cart_add"],
    "purchase": ["purchase", "purchased", "order", "checkout"],
}

# Mostly views, fewer clicks and cart additions, a few purchases, and a
# rare action the shop has no name for (the enricher calls it "other").
ACTION_WEIGHTS = [("view", 50), ("click", 22), ("add_to_cart", 16), ("purchase", 9), (None, 3)]
UNKNOWN_ACTION = "added_to_wishlist"

# What a buggy client might send; none of it is a readable event.
BAD_RECORDS = [b"not json", b'{"action": "view"}', b"[1, 2, 3]", b'{"user_id": 7}']


def action_name(rng):
    """An action's name as some producer would write it."""
    actions, weights = zip(*ACTION_WEIGHTS)
    action = rng.choices(actions, weights)[0]
    if action is None:
        return UNKNOWN_ACTION
    # Half the time our own name, else one of the tutorial's aliases.
    names = ACTION_NAMES[action]
    return names[0] if rng.random() < 0.5 else rng.choice(names[1:])


def generated_event(n, id_prefix, rng):
    """The n-th event of the stream (n > 2): its shape depends on n alone,
    so any 4 events in a row show all four shapes."""
    product_id, name, price = rng.choice(PRODUCTS)
    user_id = rng.randint(1, 500)
    event_id = f"{id_prefix}-{n}"
    action = action_name(rng)
    shape = n % 4
    if shape == 0:  # the shop's own shape: price and timestamp
        return {"event_id": event_id, "user_id": user_id, "action": action, "product_id": product_id,
                "product_name": name, "price": price, "ts": int(time.time() * 1000)}
    if shape == 1:  # the tutorial's first shape: no price, no timestamp
        return {"event_id": event_id, "user_id": user_id, "action": action, "product_id": product_id,
                "product_name": name}
    if shape == 2:  # the tutorial's second shape: no product at all
        return {"event_id": event_id, "action": action, "user_id": user_id}
    # A product id without its name: the enricher names it by its id.
    return {"event_id": event_id, "user_id": user_id, "action": action, "product_id": product_id}


def events(id_prefix, rng):
    """The endless stream: the tutorial's events, then generated ones."""
    yield from TUTORIAL_EVENTS
    n = len(TUTORIAL_EVENTS)
    while True:
        n += 1
        yield generated_event(n, id_prefix, rng)


def parse_args():
    parser = argparse.ArgumentParser(description="Send the tutorial's user actions to Kafka.")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic", default="user-actions-topic", help="topic to send to")
    parser.add_argument("--count", type=int, default=None, help="stop after N events (default: run until stopped)")
    parser.add_argument("--rate", type=float, default=5.0, help="events per second (0: as fast as possible)")
    parser.add_argument("--bad", type=int, default=0, help="also send N unreadable records (dead letters)")
    parser.add_argument("--id-prefix", default=f"ev-{int(time.time())}",
                        help="generated events get event_id <prefix>-<n> (default: ev-<unix time>)")
    parser.add_argument("--seed", type=int, default=None, help="seed for users, products and actions")
    return parser.parse_args()


def main():
    args = parse_args()
    rng = random.Random(args.seed)

    # As in the tutorial: wait for every in-sync replica (acks='all'), and
    # let records gather for a few milliseconds into batches.
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        acks='all',
        linger_ms=10,
        batch_size=16384,
        value_serializer=lambda v: json.dumps(v).encode('utf-8'),
    )

    # Sends happen in the background; a failure shows up in a callback.
    failures = []

    def failed(exc):
        failures.append(exc)
        print(f"send failed: {exc}", file=sys.stderr, flush=True)

    def send_bad_records():
        if args.bad <= 0:
            return
        # No serializer here: these bytes go to Kafka as they are.
        raw = KafkaProducer(bootstrap_servers=args.bootstrap, acks='all')
        for i in range(args.bad):
            value = BAD_RECORDS[i % len(BAD_RECORDS)]
            raw.send(args.topic, value=value).add_errback(failed)
            print(f"sent unreadable record: {value.decode('utf-8')}", flush=True)
        raw.flush()
        raw.close()

    # `kill` (the demo's way to stop) ends the loop like Ctrl-C does, so
    # what is still buffered gets flushed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    sent = 0
    bad_sent = False
    try:
        for event in events(args.id_prefix, rng):
            if args.count is not None and sent >= args.count:
                break
            producer.send(args.topic, value=event).add_errback(failed)
            sent += 1
            print(f"sent {sent}: {json.dumps(event, ensure_ascii=False)}", flush=True)
            if sent == len(TUTORIAL_EVENTS):
                send_bad_records()
                bad_sent = True
            if args.rate > 0:
                time.sleep(1.0 / args.rate)
        if not bad_sent:
            send_bad_records()
            bad_sent = True
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        # Wait until Kafka has acknowledged everything still buffered.
        producer.flush()
        producer.close()

    bad = args.bad if bad_sent else 0
    print(f"done: {sent} events and {bad} unreadable records sent to {args.topic}", flush=True)
    if failures:
        print(f"{len(failures)} records were not delivered", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
