-- The worker's usage.recorded supersedes a gateway's usage.reported for the same request, in
-- whichever order they arrive: the claim remembers which subject claimed the request id, and a
-- record that finds a report's claim takes it over (lobe.billing.ledger).
ALTER TABLE usage_request_ids ADD COLUMN reported boolean NOT NULL DEFAULT false;
ALTER TABLE usage_request_ids ADD COLUMN superseded_at timestamptz;
