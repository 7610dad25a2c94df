# redis-py's publisher from its quick start: prints how many subscribers got each message.
# REDIS_PORT picks the server (6379 unless set); arguments are the messages to send
# ('message' unless given).
import os
import sys

import redis

r = redis.Redis(port=int(os.environ.get("REDIS_PORT", "6379")))
for text in sys.argv[1:] or ['message']:
    print(r.publish('channel', text), flush=True)
