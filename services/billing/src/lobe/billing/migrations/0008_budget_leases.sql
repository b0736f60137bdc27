-- Budget leases (docs/billing.md, "Budget leases"): a gateway admits a user's requests against a
-- part of their remaining budget set aside as one reservation row, instead of one row a request.
-- `requests`: the requests the row holds (1 for an exact hold; a lease's unsettled requests), what
-- it counts in usage_periods.reserved_requests. `lease`: the row is a lease (its id is not a
-- request's); `returned`: the gateway gave it back, so it goes once its last request has settled.
-- Expand only: the previous release never writes a lease, and reads rows as before.
ALTER TABLE reservations
    ADD COLUMN requests bigint NOT NULL DEFAULT 1 CHECK (requests >= 0),
    ADD COLUMN lease boolean NOT NULL DEFAULT false,
    ADD COLUMN returned boolean NOT NULL DEFAULT false;
-- How many leases a user has live: the size of the next one depends on it.
CREATE INDEX reservations_leases_idx ON reservations (user_id) WHERE lease;
