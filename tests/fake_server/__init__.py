"""Tests of the fake Sippet server (sippet_async.testing), over real loopback HTTP."""
