#!/usr/bin/env python3
"""The coordinator alone: fully cached builds per second and submit-to-done latency.

    bench/coordinator_bench.py --server http://127.0.0.1:7070 --context sha256:... \
        [--clients 50] [--seconds 20] [--dockerfile Dockerfile] [--tag REF]

The context must already be uploaded and built once (so every step is a cache hit: no worker is
touched). Each of --clients threads loops: POST /v1/builds, then follow GET /v1/builds/{id}/events
until the stream ends, and checks the build succeeded. Prints builds/s and latency percentiles
(submit to final event). Uses only the standard library: keep-alive connections per thread.
"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse


def one_build(conn, body):
    t0 = time.perf_counter()
    conn.request("POST", "/v1/builds", body=body, headers={"Content-Type": "application/json"})
    res = conn.getresponse()
    data = res.read()
    if res.status != 202:
        raise RuntimeError(f"submit: HTTP {res.status}: {data[:200]!r}")
    build_id = json.loads(data)["id"]
    conn.request("GET", f"/v1/builds/{build_id}/events")
    res = conn.getresponse()
    state = None
    cached = total = 0
    for line in res:
        ev = json.loads(line)
        if ev["type"] == "build":
            state = ev["state"]
        elif ev["type"] == "result":
            cached, total = ev.get("cached_steps", 0), ev.get("total_steps", 0)
    res.read()
    elapsed = time.perf_counter() - t0
    if state != "succeeded":
        raise RuntimeError(f"build {build_id} ended {state}")
    if cached != total:
        raise RuntimeError(f"build {build_id}: {total - cached} steps were not cache hits")
    return elapsed


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", default="http://127.0.0.1:7070")
    p.add_argument("--context", required=True)
    p.add_argument("--dockerfile", default="Dockerfile")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=20)
    args = p.parse_args()
    url = urllib.parse.urlparse(args.server)
    body = json.dumps({"context": args.context, "dockerfile": args.dockerfile, "tags": args.tag})
    latencies, errors = [], []
    lock = threading.Lock()
    stop_at = time.perf_counter() + args.seconds

    def client():
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        while time.perf_counter() < stop_at:
            try:
                t = one_build(conn, body)
                with lock:
                    latencies.append(t)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))
                conn.close()
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if not latencies:
        raise SystemExit(f"no build finished; errors: {errors[:3]}")
    q = statistics.quantiles(latencies, n=100)
    print(f"coordinator: {len(latencies)} fully cached builds by {args.clients} clients "
          f"in {wall:.1f} s = {len(latencies) / wall:.1f} builds/s; submit-to-done "
          f"p50 {q[49] * 1000:.1f} ms, p90 {q[89] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms; errors {len(errors)}")
    if errors:
        print("first errors:", errors[:3])


if __name__ == "__main__":
    main()
