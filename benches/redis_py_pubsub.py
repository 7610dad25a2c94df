# redis-py baseline for benches/bridge.rs: one subscriber thread and one publisher, through the
# redis-server on REDIS_PORT, `r.publish` as in redis-py's quick start (a round trip each). Prints the seconds
# from the first publish to the last message received.
import os
import sys
import threading
import time

import redis

port = int(os.environ["REDIS_PORT"])
messages = int(sys.argv[1])
payload = b"a payload of about forty bytes, shared"

r = redis.Redis(port=port)
p = r.pubsub()
p.subscribe("bench")
p.get_message(timeout=5)  # the subscribe confirmation: Redis has the subscription
done = threading.Event()


def listen():
    got = 0
    for message in p.listen():
        if message["type"] == "message":
            got += 1
            if got == messages:
                done.set()
                return


thread = threading.Thread(target=listen)
thread.start()
began = time.perf_counter()
for _ in range(messages):
    r.publish("bench", payload)
done.wait(60)
elapsed = time.perf_counter() - began
thread.join(1)
if not done.is_set():
    sys.exit("the subscriber did not get every message")
print(elapsed)
