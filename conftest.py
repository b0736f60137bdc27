"""Fixtures that import the services, for every test tree. pytest takes `pytest_plugins` only here, at
the root; the harness every package loads (lobe.devtools' pytest plugin) imports no service.

- lobe.billing.testing: `billing_db`, a database with the schema this billing migrates;
- lobe.devtools.suite.fixtures: the one way to start the services (`worker`, `chat_worker`,
  `make_process`; lobe.devtools.suite for the functions they build on).
"""

pytest_plugins = ["lobe.billing.testing", "lobe.devtools.suite.fixtures"]
