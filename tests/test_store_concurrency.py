"""Nothing is lost: 8 processes saving at once, threads sharing one store, and a writer killed by SIGKILL."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mmdemo.store import open_store
from helpers import make_image, run_processes

pytestmark = pytest.mark.usefixtures("store_env")

ROOT = Path(__file__).resolve().parent.parent
PROCESSES, SAVES = 8, 250
IMAGES = 10                      # distinct images shared by all writers: dedup races on every save


def _writer(url: str, worker: int, barrier, results) -> None:
    """One process: open the store, wait for the others, save SAVES corrections, report the ids."""
    import numpy as np  # noqa: F401  (warm the import before the barrier)

    store = open_store(url)
    images = [make_image(i) for i in range(IMAGES)]
    barrier.wait(timeout=60)
    ids = []
    try:
        for i in range(SAVES):
            cid = store.add(images[(worker + i) % IMAGES], f"output {worker}/{i}", f"corrected {worker}/{i}",
                            model=f"model-{worker % 2}", annotator=f"worker-{worker}")
            ids.append(cid)
            if i % 10 == 0:                   # readable the moment add() returns
                assert store.get(cid).corrected == f"corrected {worker}/{i}"
        results.put((worker, ids, None))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put((worker, ids, f"{type(e).__name__}: {e}"))
    finally:
        store.close()


def test_eight_processes_lose_nothing(store_url):
    open_store(store_url).close()             # the app creates the schema once; writers then start together
    got = run_processes(_writer, [(store_url, w) for w in range(PROCESSES)], timeout=120)
    ids = [i for w in sorted(got) for i in got[w]]
    assert len(ids) == PROCESSES * SAVES == 2_000 and len(set(ids)) == 2_000
    with open_store(store_url) as store:
        assert store.count() == 2_000
        saved = {c.id: (c.corrected, c.annotator) for c in store.scan()}
        assert saved == {cid: (f"corrected {w}/{n}", f"worker-{w}")
                         for w, wids in got.items() for n, cid in enumerate(wids)}
        for cid in ids[::50]:
            assert store.get(cid).history[0].corrected == saved[cid][0]
        stats = store.stats()
        assert stats["images"] == IMAGES and stats["by_annotator"] == {f"worker-{w}": SAVES for w in range(PROCESSES)}


def test_threads_share_one_store(store_url):
    store = open_store(store_url)
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        try:
            for i in range(40):
                cid = store.add(make_image(i % 3), "o", f"t{t} c{i}", model="m")
                assert store.get(cid).corrected == f"t{t} c{i}"
                with lock:
                    ids.append(cid)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(ids)) == 240 and store.count() == 240
    store.close()


WRITER = """
import sys
import numpy as np
import pytest

from mmdemo.store import open_store
store = open_store(sys.argv[1])
rng = np.random.default_rng(0)
print("ready", flush=True)
i = 0
while True:
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) if i % 3 == 0 else np.zeros((8, 8, 3), np.uint8)
    cid = store.add(image, "model output %d" % i, "corrected %d" % i, model="m", note="x" * (i % 500))
    print(cid, flush=True)
    i += 1
"""


def test_sigkill_mid_stream_loses_no_returned_id(store_url, tmp_path):
    open_store(store_url).close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MMDEMO_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, store_url], stdout=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while len(lines) < 150 and time.monotonic() < deadline:   # well into the stream, mid-save
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        os.kill(proc.pid, signal.SIGKILL)
        lines += proc.stdout.readlines()                      # whatever it printed before it died
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    printed = [ln.strip() for ln in lines if ln.endswith("\n") and len(ln.strip()) == 36]
    assert len(printed) >= 150
    if store_url.startswith("sqlite"):
        db = store_url.removeprefix("sqlite:///")
        with sqlite3.connect(db) as conn:                      # opens cleanly, recovers the WAL
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with open_store(store_url) as store:
        for n, cid in enumerate(printed):
            c = store.get(cid)
            assert c.corrected == f"corrected {n}"
            assert store.image_bytes(c.image_hash).startswith(b"\x89PNG")
        assert len(printed) <= store.count() <= len(printed) + 1  # at most the save in flight got committed
        store.add(make_image(1), "o", "after the crash", model="m")   # and it still takes writes
