"""The tutorial's consumer: reads the processed user actions and shows them.

The events were enriched by the ``action-enricher`` deployment: every field
the producer sent, the action under the shop's own name (``action_as_sent``
when it was sent under another), a ``category``, a ``product_name`` and
``ts`` where they were missing, an ``event_id`` and the ``source`` record.

As in the tutorial, a consumer group reads from the earliest offset it has
not committed yet, so a second run with the same ``--group`` goes on where
the first stopped.

Run it with the tutorial's virtualenv (``make setup`` makes it):

    deploy/demo/tutorial/python.sh deploy/demo/tutorial/consumer.py
"""

import argparse
import json
import signal
import sys
import time

from kafka import KafkaConsumer


def parse_args():
    parser = argparse.ArgumentParser(description="Print the processed user actions from Kafka.")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic", default="processed-user-actions-topic", help="topic to read")
    parser.add_argument("--group", default="streaming-consumer-group", help="consumer group")
    parser.add_argument("--max-records", type=int, default=None, help="stop after N records")
    parser.add_argument("--timeout", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per line: topic, partition, offset, key, value")
    return parser.parse_args()


def readable(message):
    """One processed event on one line, e.g.
    ``p1@17 user 123: add_to_cart (sent as added_to_cart) [cart] Camiseta de Trekking (456) id=...``"""
    event = message.value
    line = f"p{message.partition}@{message.offset} user {event.get('user_id')}: {event.get('action')}"
    if "action_as_sent" in event:
        line += f" (sent as {event['action_as_sent']})"
    line += f" [{event.get('category')}]"
    name, product_id = event.get("product_name"), event.get("product_id")
    if product_id is not None and name not in (None, str(product_id)):
        line += f" {name} ({product_id})"
    elif product_id is not None:  # its name is only the id: the producer sent none
        line += f" product {product_id}"
    elif name is not None:
        line += f" {name}"
    if event.get("price") is not None:
        line += f" {event['price']:.2f}"
    if isinstance(event.get("ts"), int):
        line += " at " + time.strftime("%H:%M:%S", time.localtime(event["ts"] / 1000))
    return line + f" id={event.get('event_id')}"


def main():
    args = parse_args()
    deadline = None if args.timeout is None else time.monotonic() + args.timeout

    consumer = KafkaConsumer(
        args.topic,
        group_id=args.group,
        bootstrap_servers=args.bootstrap,
        auto_offset_reset='earliest',
        value_deserializer=lambda m: json.loads(m.decode('utf-8')),
        # The loop below wakes up at least every half second, so --timeout
        # is honoured even while nothing arrives.
        consumer_timeout_ms=500,
    )

    # `kill` (the demo's way to stop) leaves like Ctrl-C does: the consumer
    # is closed, which commits what was read.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    count = 0

    def done():
        full = args.max_records is not None and count >= args.max_records
        return full or (deadline is not None and time.monotonic() >= deadline)

    try:
        while not done():
            for message in consumer:
                count += 1
                if args.json:
                    key = None if message.key is None else message.key.decode('utf-8')
                    print(json.dumps({"topic": message.topic, "partition": message.partition,
                                      "offset": message.offset, "key": key, "value": message.value},
                                     ensure_ascii=False), flush=True)
                else:
                    print(readable(message), flush=True)
                if done():
                    break
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        consumer.close()

    print(f"consumed {count} records from {args.topic}", file=sys.stderr, flush=True)
    if args.max_records is not None and count < args.max_records:
        print(f"stopped after {args.timeout} s with {count} of {args.max_records} records",
              file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
