"""Prometheus metrics at /metrics: request latency by view (middleware.py), and, read when Prometheus scrapes,
job runs, leads by state and the broker's queues (collectors.py); the endpoint and its protection (views.py).

Each process counts its own requests. With PROMETHEUS_MULTIPROC_DIR set (gunicorn's worker processes: see
gunicorn.conf.py), prometheus-client's multiprocess mode keeps every process's figures in files there and a
scrape adds them up, whichever worker answers it."""
