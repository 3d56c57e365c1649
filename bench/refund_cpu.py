"""Python CPU per keyed offline refund, in this process: `python -m bench.refund_cpu [N]`.

A small side measurement for the money transaction's own cost, without a server or a load
generator: its own database (`kassa_bench_cpu`, dropped and rebuilt), one organization with
20 payments made through the API, 30 untimed refunds, then N (300) keyed refunds of 0.01 with
Django's test client; prints the CPU (`time.process_time`) and wall time per refund. Run it
on two checkouts one after the other to compare a change with its parent.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from bench import database

URL = os.environ.get("KASSA_BENCH_CPU_URL",
                     "postgres://postgres@127.0.0.1:5432/kassa_bench_cpu")


def main(n: int) -> None:
    if "bench" not in database.database_name(URL):
        raise SystemExit("the database's name must contain 'bench': it is dropped first")
    database.ensure_server(URL)
    database.ensure_database(URL, drop_first=True)
    database.setup_django(URL)
    from django.core.management import call_command
    from django.test import Client

    from bench.refunds import BODY, make_tenant

    call_command("migrate", interactive=False, verbosity=0)
    tenant = make_tenant("Cpu Spa", 20)
    client = Client(headers={"Authorization": f"Bearer {tenant.token}"})

    def refund(i: int) -> None:
        payment = tenant.payments[i % len(tenant.payments)]
        r = client.post(f"/api/v1/payments/{payment}/refunds", BODY,
                        content_type="application/json",
                        headers={"Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 201, r.content

    for i in range(30):
        refund(i)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        refund(i)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{n} keyed offline refunds: {cpu / n * 1000:.2f} ms CPU and "
          f"{wall / n * 1000:.2f} ms wall each", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
