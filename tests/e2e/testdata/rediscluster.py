"""Drives a ringkv cluster with redis-py's RedisCluster (Debian's python3-redis).

Usage: rediscluster.py CLIENT_ADDR=HTTP_ADDR ..., with the nodes' password in
RINGKV_PASSWORD when they ask for one. Prints one JSON object: for
each key written and read, the client address of the node whose own counter
of that command rose, so the Go test can check it against the ring; then the
results of the other checks. Any failure raises, and the exit status says so.
"""
import json
import os
import sys
import urllib.request

from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ResponseError

nodes = dict(arg.split("=", 1) for arg in sys.argv[1:])
password = os.environ.get("RINGKV_PASSWORD") or None


def counters(cmd):
    out = {}
    prefix = 'ringkv_resp_commands_total{command="%s"} ' % cmd
    for client, http in nodes.items():
        n = 0
        req = urllib.request.Request("http://%s/metrics" % http)
        if password:
            req.add_header("Authorization", "Bearer " + password)
        with urllib.request.urlopen(req) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(prefix):
                    n = int(float(line[len(prefix):]))
        out[client] = n
    return out


def served_by(cmd, fn):
    before = counters(cmd)
    fn()
    after = counters(cmd)
    moved = {a: after[a] - before[a] for a in after if after[a] != before[a]}
    if list(moved.values()) != [1]:
        raise SystemExit("%s: counters moved %r, want one node by one" % (cmd, moved))
    return next(iter(moved))


startup = []
for client in nodes:
    host, port = client.rsplit(":", 1)
    startup.append(ClusterNode(host, int(port)))
rc = RedisCluster(startup_nodes=startup, password=password, decode_responses=True)

result = {"set": {}, "get": {}}
for i in range(12):
    key = "py:%d" % i
    result["set"][key] = served_by("set", lambda: rc.set(key, "v%d" % i))
    value = {}
    result["get"][key] = served_by("get", lambda: value.setdefault("v", rc.get(key)))
    if value["v"] != "v%d" % i:
        raise SystemExit("GET %s = %r" % (key, value["v"]))

# A cluster pipeline sends no MULTI: it works.
pipe = rc.pipeline()
for i in range(20):
    pipe.set("pipe:%d" % i, i)
pipe.execute()
if rc.get("pipe:19") != "19":
    raise SystemExit("pipeline write lost")
result["mset_nonatomic"] = rc.mset_nonatomic({"{t}a": "1", "{t}b": "2"})
result["mget"] = rc.mget("{t}a", "{t}b")
# KEYS on any one node is cluster-wide; redis-py would ask every primary and
# concatenate, repeating each key once per node.
result["keys"] = sorted(rc.keys("py:1*", target_nodes=RedisCluster.RANDOM))
result["keyslot"] = rc.keyslot("foo")
try:
    rc.lpush("list", "x")
    raise SystemExit("LPUSH succeeded")
except ResponseError as e:
    result["lpush_error"] = str(e)
print(json.dumps(result))
