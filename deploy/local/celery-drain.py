#!/usr/bin/env python3
"""Celery's drain of N no-op tasks on the same Redis, for `dbq bench queue --celery`.

  celery-drain.py push  REDIS_URL QUEUE N        enqueue N no-op tasks (pipelined)
  celery-drain.py work  REDIS_URL QUEUE N OUT    run a solo worker until N tasks ran; write
                                                 {"first_start": t, "last_finish": t} to OUT

Times are time.time() at the first task's prerun and the last task's postrun: first job
started to last job finished, as dbq's figure is measured.
"""
import json
import os
import sys
import time

from celery import Celery
from celery.signals import task_prerun, task_postrun

mode, url, queue, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
app = Celery("dbqbench", broker=url)
app.conf.update(task_default_queue=queue, task_ignore_result=True, worker_prefetch_multiplier=64,
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)


@app.task(name="noop")
def noop():
    return None


state = {"first": None, "last": None, "done": 0}


@task_prerun.connect
def _prerun(**_):
    if state["first"] is None:
        state["first"] = time.time()


@task_postrun.connect
def _postrun(**_):
    state["done"] += 1
    if state["done"] >= count:
        state["last"] = time.time()
        with open(sys.argv[5], "w") as out:
            json.dump({"first_start": state["first"], "last_finish": state["last"]}, out)
        os._exit(0)


if mode == "push":
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            noop.apply_async(producer=producer)
elif mode == "work":
    worker = app.Worker(pool="solo", concurrency=1, loglevel="WARNING", quiet=True, without_heartbeat=True,
                        without_mingle=True, without_gossip=True)
    worker.start()
