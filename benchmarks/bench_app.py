"""App benchmark: cold start of `python app.py` to the first served page, the first caption of an example after
start, and N concurrent gradio_client users asking questions for a bounded time (errors, p50/p95 latency).
Writes benchmarks/results/app.json and prints a table.

    python benchmarks/bench_app.py                      # 20 users for 60 s
    python benchmarks/bench_app.py --quick              # 4 users for 10 s
    python benchmarks/bench_app.py --users 8 --seconds 30
"""
from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table, write  # noqa: E402

TARGETS = {"cold_start_s": 15.0, "first_caption_s": 1.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, data_dir: str) -> tuple[subprocess.Popen, float]:
    """Start `python app.py`; return the process and the seconds until GET / answered 200."""
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "MMDEMO_DATA_DIR": data_dir, "GRADIO_ANALYTICS_ENABLED": "False"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited with {proc.returncode}:\n{proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, time.perf_counter() - started
        except OSError:
            pass
        if time.perf_counter() - started > 180:
            proc.terminate()
            raise SystemExit("app.py did not serve a page within 180 s")
        time.sleep(0.05)


def first_caption(url: str, example: dict) -> dict[str, float]:
    from gradio_client import Client, handle_file

    t = time.perf_counter()
    client = Client(url, verbose=False)
    connect = time.perf_counter() - t
    t = time.perf_counter()
    out = client.predict(handle_file(example["path"]), "shapes-cross", "greedy", 24, 3, 0.9, 1.0, -1,
                         api_name="/caption")
    return {"client_connect_s": connect, "first_caption_s": time.perf_counter() - t, "caption": out["caption"],
            "expected": example["caption"]}


def load_test(url: str, examples: list[dict], users: int, seconds: float) -> dict:
    """`users` threads, each with its own client, asking example questions back to back for `seconds`."""
    from gradio_client import Client, handle_file

    latencies: list[float] = []
    errors: list[str] = []
    wrong = 0
    lock = threading.Lock()
    ready = threading.Barrier(users + 1)        # every user connected …
    go = threading.Event()                       # … then all start at once, with the end time set
    stop_at = [0.0]

    def user(i: int) -> None:
        nonlocal wrong
        rng = random.Random(i)
        try:
            client = Client(url, verbose=False)
        except Exception as e:  # noqa: BLE001 — counted as an error
            with lock:
                errors.append(f"connect: {e}")
            ready.wait()
            return
        files = {e["path"]: handle_file(e["path"]) for e in examples}
        ready.wait()
        go.wait()
        while time.perf_counter() < stop_at[0]:
            ex = rng.choice(examples)
            t = time.perf_counter()
            try:
                out = client.predict(files[ex["path"]], ex["question"], "shapes-cross", 5, api_name="/ask")
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(str(e)[:200])
                continue
            took = time.perf_counter() - t
            with lock:
                latencies.append(took)
                wrong += out["answer"] != ex["answer"]

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
    for th in threads:
        th.start()
    ready.wait()
    begin = time.perf_counter()
    stop_at[0] = begin + seconds
    go.set()
    for th in threads:
        th.join(seconds + 120)
    wall = time.perf_counter() - begin
    ms = sorted(1000 * x for x in latencies)

    def pct(p: float) -> float | None:
        return ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))] if ms else None

    return {"users": users, "seconds": round(wall, 2), "requests": len(ms), "errors": len(errors),
            "error_samples": sorted(set(errors))[:5], "wrong_answers": wrong,
            "requests_per_s": round(len(ms) / wall, 2) if wall else None,
            "p50_ms": pct(50), "p95_ms": pct(95), "max_ms": ms[-1] if ms else None,
            "mean_ms": statistics.fmean(ms) if ms else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="4 users for 10 s")
    args = parser.parse_args(argv)
    users, seconds = (4, 10.0) if args.quick else (args.users, args.seconds)

    from mmdemo.models.registry import get_entry
    from mmdemo.world.examples import read_examples

    if not get_entry("shapes-cross").available():
        raise SystemExit("shapes-cross weights are not in assets/models/: train them first")
    examples = read_examples()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mmdemo-bench-") as data_dir:
        proc, cold = start_app(port, data_dir)
        try:
            url = f"http://127.0.0.1:{port}/"
            first = first_caption(url, examples[0])
            load = load_test(url, examples, users, seconds)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    from mmdemo.ui.app import QUEUE_SIZE, concurrency_limit

    payload = {"cold_start_s": round(cold, 3), **{k: (round(v, 4) if isinstance(v, float) else v)
                                                  for k, v in first.items()},
               "load": load, "queue": {"default_concurrency_limit": concurrency_limit(), "max_size": QUEUE_SIZE},
               "note": "the gradio_client users run on the same machine as the server",
               "targets": TARGETS, "command": "python benchmarks/bench_app.py" + (" --quick" if args.quick else "")}
    path = write("app", payload)
    table([
        ("cold start → first page", f"{cold:.2f} s (target ≤ {TARGETS['cold_start_s']:.0f} s)"),
        ("first caption after start",
         f"{first['first_caption_s']:.3f} s (target ≤ {TARGETS['first_caption_s']:.0f} s)"),
        (f"{users} users × {seconds:.0f} s asking", f"{load['requests']} requests, {load['errors']} errors, "
                                                    f"{load['requests_per_s']} req/s"),
        ("latency p50 / p95 / max", f"{load['p50_ms']:.0f} / {load['p95_ms']:.0f} / {load['max_ms']:.0f} ms"
         if load["requests"] else "n/a"),
        ("wrong answers", str(load["wrong_answers"])),
    ])
    print(f"wrote {path.relative_to(ROOT)}")
    return 0 if load["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
