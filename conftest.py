"""Fixtures a package owns and other test trees use too. pytest takes `pytest_plugins` only here, at
the root; the harness every package loads (lobe.devtools' pytest plugin) imports no service.
"""

pytest_plugins = ["lobe.billing.testing", "lobe.chat_worker.testing"]
