#!/usr/bin/env python3
"""docker-py side of bench/DockerBench: the same calls against the same engine, results as one JSON line.

Uses docker-py's low-level APIClient (its fastest path: no model objects) with keep-alive connections.
Invoked by the Swift bench; can also be run by hand:

    python3 bench/docker_py_bench.py --host unix:///tmp/d/docker.sock --container ID --label lab.bench=x \
        --image lab-base:bookworm
"""
import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import docker


def rate(calls, seconds):
    return calls / seconds if seconds > 0 else 0.0


def sequential(fn, n):
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return rate(n, time.perf_counter() - start)


def concurrent(fn, n, threads):
    per_thread = n // threads

    def worker(_):
        for _ in range(per_thread):
            fn()

    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        list(pool.map(worker, range(threads)))
        return rate(per_thread * threads, time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--container", required=True, help="id to inspect")
    parser.add_argument("--label", required=True, help="key=value filter for list")
    parser.add_argument("--image", required=True)
    parser.add_argument("--inspect", type=int, default=2000)
    parser.add_argument("--list", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--api-version", default="1.41")
    parser.add_argument("--only", choices=["calls", "cycles"], help="run one half (the Swift bench interleaves cycles)")
    args = parser.parse_args()

    if docker.__version__ != "7.1.0":
        print(f"warning: docker-py {docker.__version__}, expected 7.1.0", file=sys.stderr)
    # The pool must hold one connection per thread, or threads queue for connections.
    client = docker.APIClient(base_url=args.host, version=args.api_version, timeout=60,
                              max_pool_size=max(10, args.concurrency))
    label_filter = {"label": [args.label]}

    def inspect():
        client.inspect_container(args.container)

    def list_containers():
        client.containers(all=True, filters=label_filter)

    result = {"client": f"docker-py {docker.__version__}"}
    if args.only != "cycles":
        for _ in range(50):  # warm-up: connections, caches
            inspect()
            list_containers()
        result["inspectSequential"] = sequential(inspect, args.inspect)
        result["inspectConcurrent"] = concurrent(inspect, args.inspect, args.concurrency)
        result["listSequential"] = sequential(list_containers, args.list)
        result["listConcurrent"] = concurrent(list_containers, args.list, args.concurrency)

    if args.only != "calls":
        host_config = client.create_host_config(network_mode="host", init=True)
        key, value = args.label.split("=", 1)
        labels = {key: value, "lab.bench.cycle": "docker-py"}
        durations = []
        for _ in range(args.cycles):
            start = time.perf_counter()
            created = client.create_container(args.image, command=["sleep", "300"], labels=labels,
                                              host_config=host_config)
            client.start(created["Id"])
            client.stop(created["Id"], timeout=10)
            client.remove_container(created["Id"])
            durations.append((time.perf_counter() - start) * 1000)
        result["cycleDurationsMs"] = durations
        result["cycleMedianMs"] = statistics.median(durations) if durations else 0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
