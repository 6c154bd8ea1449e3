"""The jobs: bulk runs with one outcome per item, their journal, and the call worker.

They drive a client through the small ``Runner`` protocol (``sippet_async._runner``), so
nothing here imports the client class.
"""
