"""`make bench`: the reports timed over a generated history of ten million postings.

`python -m bench [--scale S] [--rebuild] [--repeats N] [--no-verify] [--explain]`. The data set
lives in its own PostgreSQL database (`kassa_bench`, or DATABASE_URL if its name says bench),
generated once in SQL (`bench.dataset`) and reused until `--rebuild` or another scale; the
timings (`bench.timings`) are printed as a table and written to var/bench/results.json.
`python -m bench --refunds` runs only the refund API beside the bare SQL refund on pgbench
(`bench.refunds`), in a small database of its own.
"""
