"""One campaign queue, many processes: 8 processes of annotators drain 200 images at overlap 2 with every image
submitted by exactly 2 distinct annotators, and leases held by a SIGKILLed process return after they expire.
On SQLite always; on PostgreSQL when MMDEMO_TEST_POSTGRES_URL is set (`source .ci/postgres.sh`)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mmdemo.store import open_store
from helpers import make_image, run_processes


ROOT = Path(__file__).resolve().parent.parent
PROCESSES, IMAGES, OVERLAP = 8, 200, 2
NAME = "race"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("store_env")]


def _fill(url: str) -> None:
    with open_store(url, sync=None) as store:
        store.create_campaign(NAME, model="shapes-cross", overlap=OVERLAP, order="random", seed=3)
        store.add_tasks(NAME, [{"image": make_image(i), "image_path": f"img-{i}.png",
                                "model_output": f"a red circle {i}", "question": None, "token_probs": [0.5]}
                               for i in range(IMAGES)])


def _worker(url: str, worker: int, lease_seconds: int, barrier, results) -> None:
    """Two annotators in one process take turns: lease, submit, until every task is done."""
    os.environ["MMDEMO_LEASE_SECONDS"] = str(lease_seconds)
    store = open_store(url, sync=None)
    names = [f"w{worker}-a", f"w{worker}-b"]
    barrier.wait(timeout=120)
    done: list[tuple[int, str, str]] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            progressed = False
            for who in names:
                task = store.next_task(NAME, who)
                if task is not None:
                    cid = store.submit_task(task.id, f"{who}: {task.model_output} fixed", who)
                    done.append((task.id, who, cid))
                    progressed = True
            if not progressed:
                counts = store.campaign_counts(NAME)
                if counts["tasks_done"] == counts["tasks"]:
                    break
                time.sleep(0.05)               # what is left is leased to others (or only theirs to finish)
        results.put((worker, done, None))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put((worker, done, f"{type(e).__name__}: {e}"))
    finally:
        store.close()


def _run_workers(url: str, workers: list[int], lease_seconds: int) -> dict[int, list[tuple[int, str, str]]]:
    return run_processes(_worker, [(url, w, lease_seconds) for w in workers], timeout=300)


def _check_every_image_twice(url: str, got: dict[int, list[tuple[int, str, str]]]) -> list[tuple[int, str, str]]:
    subs = [s for w in got.values() for s in w]
    assert len(subs) == IMAGES * OVERLAP
    assert len({(t, who) for t, who, _ in subs}) == len(subs)             # no task submitted twice by anyone
    per_task = Counter(t for t, _, _ in subs)
    assert len(per_task) == IMAGES and set(per_task.values()) == {OVERLAP}
    with open_store(url, sync=None) as store:
        stored = store.campaign_submissions(NAME)
        assert len(stored) == IMAGES * OVERLAP
        by_task: dict[int, set[str]] = {}
        for r in stored:
            by_task.setdefault(r["task_id"], set()).add(r["annotator"])
        assert len(by_task) == IMAGES and all(len(a) == OVERLAP for a in by_task.values())   # distinct annotators
        assert {(r["task_id"], r["annotator"], r["correction_id"]) for r in stored} == set(subs)
        assert store.count() == IMAGES * OVERLAP
        status = store.campaign_status(NAME)
        assert (status["images"], status["tasks_done"], status["images_done"], status["leased"],
                status["pending"]) == (IMAGES, IMAGES, IMAGES, 0, 0)
        assert status["agreement"]["word_similarity"] is not None
    return subs


def test_eight_processes_drain_the_queue(store_url):
    _fill(store_url)
    got = _run_workers(store_url, list(range(PROCESSES)), lease_seconds=600)
    subs = _check_every_image_twice(store_url, got)
    assert len({who for _, who, _ in subs}) >= 2


VICTIM = """
import sys
from mmdemo.store import open_store
store = open_store(sys.argv[1], sync=None)
ids = [store.next_task(sys.argv[2], f"victim-{i}").id for i in range(3)]
print(" ".join(map(str, ids)), flush=True)
sys.stdin.read()                                  # hold the leases until killed
"""


def test_leases_of_a_killed_process_return_to_the_queue(store_url, tmp_path):
    _fill(store_url)
    lease = 3
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MMDEMO_LEASE_SECONDS": str(lease),
           "MMDEMO_DATA_DIR": str(tmp_path / "data")}
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, store_url, NAME], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        held = [int(x) for x in victim.stdout.readline().split()]
        assert len(held) == 3
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.wait(timeout=10)
        victim.stdout.close()
        victim.stdin.close()
    assert victim.returncode == -signal.SIGKILL
    with open_store(store_url, sync=None) as store:
        assert store.campaign_counts(NAME)["leased"] == 3          # still held by the dead process
    got = _run_workers(store_url, list(range(1, PROCESSES)), lease_seconds=lease)
    subs = _check_every_image_twice(store_url, got)
    finishers = {t: [who for tid, who, _ in subs if tid == t] for t in held}
    assert all(len(w) == OVERLAP and not any(x.startswith("victim") for x in w) for w in finishers.values())
