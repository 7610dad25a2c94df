# redis-py's subscriber from its quick start: prints every message, confirmations first.
# REDIS_PORT picks the server (6379 unless set); it stops after a message "bye".
import os

import redis

r = redis.Redis(port=int(os.environ.get("REDIS_PORT", "6379")))
p = r.pubsub(); p.subscribe('channel')
for message in p.listen():
    print(message, flush=True)
    if message['type'] == 'message' and message['data'] == b'bye':
        break
