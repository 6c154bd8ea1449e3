"""The jobs: bulk runs with one outcome per item, their journal, and the call worker.

They drive a client through the small ``Runner`` protocol (``sippet_async._runner``), so
nothing here imports the client class. Imports point down this list:

``_worker``     CallWorker: a long-running consumer built on bulk()
``_bulk``       BulkJob and bulk(): the public face, wiring the parts below
``_items``      the I/O one item needs: client.run, reconcile, journal, waiting an outage
``_scheduler``  N workers over a lazily read input, backpressure, ordered output
``_policy``     one item's lifecycle, sans-I/O: the never-send-twice rule
``_state``      the job's one state enum and its transition table
``_report``     Outcome and BulkReport
``_journal``    the append-only file that lets a killed job resume
``_source``     JobSource: what a shared durable queue gives the call worker
"""
