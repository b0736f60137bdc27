"""The event catalog: every subject on the bus, as data.

This is the single source of truth the documentation (docs/events.md, docs/asyncapi.json), the
contract snapshots and the drift tests are generated from. Subjects and models stay defined in
their domain modules (lobe.shared.events.*); this module only says how they are wired: who
publishes, who consumes under which queue group or durable consumer, and with what guarantee.

Pattern subjects name their variable tokens in angle brackets (`chat.reply.<request_id>.<offer>`);
services build concrete subjects only through `subject()`, which refuses an uncatalogued pattern,
a missing or extra token, and a value that is not a single NATS token. `BUCKETS` are the Object
Store buckets, with the services that write and read each.

The catalog in modules: `model` (what an entry is), `entries` (the entries), `changelog` (its
version and history) and `api` (what the code asks it); this package re-exports them.
"""

from lobe.shared.catalog.api import (
    contract_models,
    durable_consumers,
    json_schema,
    lookup,
    subject,
)
from lobe.shared.catalog.changelog import CATALOG_VERSION, CHANGELOG
from lobe.shared.catalog.entries import BUCKETS, CATALOG
from lobe.shared.catalog.model import (
    BILLING,
    CHAT_WORKER,
    DELIVERY_TEXT,
    GATEWAY,
    METRICS,
    SERVICES,
    Consumer,
    Delivery,
    ObjectBucket,
    Subject,
    type_name,
)

__all__ = [
    "BILLING",
    "BUCKETS",
    "CATALOG",
    "CATALOG_VERSION",
    "CHANGELOG",
    "CHAT_WORKER",
    "DELIVERY_TEXT",
    "GATEWAY",
    "METRICS",
    "SERVICES",
    "Consumer",
    "Delivery",
    "ObjectBucket",
    "Subject",
    "contract_models",
    "durable_consumers",
    "json_schema",
    "lookup",
    "subject",
    "type_name",
]
