-- Billing schema v1: accounts, keys, plans, prices, the usage ledger, rollups and reservations.
-- Money is NUMERIC(24,10) US dollars: prices have at most 4 decimals per million tokens, so a
-- cost (tokens x price / 1e6) is exact in 10 decimals and sums never round.

CREATE TABLE users (
    id          text PRIMARY KEY,
    email       text UNIQUE,
    name        text,
    plan        text NOT NULL DEFAULT 'free',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are 256-bit random tokens, so a plain SHA-256 is enough (no brute force is possible,
-- unlike passwords) and keeps the gateway's per-request lookup a single index probe.
CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash    bytea NOT NULL UNIQUE,
    prefix      text NOT NULL,
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

-- Mirror of the operator's plans YAML (synced at start-up) so SQL can join limits; NULL = unlimited.
CREATE TABLE plans (
    name            text PRIMARY KEY,
    tokens_limit    bigint,
    cost_limit_usd  numeric(24, 10),
    requests_limit  bigint,
    rate_tier       text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Per-user overrides: a non-NULL column replaces the plan's value.
CREATE TABLE plan_overrides (
    user_id         text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    tokens_limit    bigint,
    cost_limit_usd  numeric(24, 10),
    requests_limit  bigint,
    rate_tier       text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Mirror of the prices YAML; each ledger row keeps the effective_from it was priced with, so a
-- price change never rewrites history.
CREATE TABLE prices (
    provider               text NOT NULL,
    model                  text NOT NULL,
    effective_from         date NOT NULL,
    input_per_mtok         numeric(24, 10) NOT NULL,
    output_per_mtok        numeric(24, 10) NOT NULL,
    cached_input_per_mtok  numeric(24, 10) NOT NULL,
    PRIMARY KEY (provider, model, effective_from)
);

-- The ledger: one row per chat request, range-partitioned by month on occurred_at so retention
-- is DROP of a partition and indexes stay per-month sized at hundreds of millions of rows.
-- No FK to users: ingestion must never block on an account it has not heard of.
--
-- Uniqueness: PostgreSQL only enforces unique keys on a partitioned table when they include the
-- partition key, and a retried event could in principle carry another occurred_at. So the unique
-- request_id lives in usage_request_ids, a narrow unpartitioned table the ingester inserts into
-- first (ON CONFLICT DO NOTHING RETURNING); only the ids it returns reach the ledger. Its rows
-- only need to outlive the window in which a duplicate can arrive (USAGE stream retention, 7 d),
-- so it is pruned by seen_at long before it grows like the ledger does.
CREATE TABLE usage_request_ids (
    request_id  text PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_request_ids_seen_idx ON usage_request_ids (seen_at);

CREATE TABLE usage_ledger (
    request_id          text NOT NULL,
    occurred_at         timestamptz NOT NULL,
    event_id            uuid NOT NULL,
    period              text NOT NULL,
    user_id             text NOT NULL,
    api_key_id          text,
    provider            text NOT NULL,
    deployment          text NOT NULL,
    model               text NOT NULL,
    status              text NOT NULL,
    error_code          text,
    prompt_tokens       integer NOT NULL,
    completion_tokens   integer NOT NULL,
    cached_tokens       integer NOT NULL,
    reasoning_tokens    integer NOT NULL,
    cost_usd            numeric(24, 10) NOT NULL,
    priced              boolean NOT NULL,
    price_effective_from date,
    ttft_ms             real,
    duration_ms         real NOT NULL,
    stream              boolean NOT NULL,
    ingested_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX usage_ledger_user_time_idx ON usage_ledger (user_id, occurred_at);

-- Creates the month partition holding `ts` if missing. The ingester calls it before a batch
-- touches a new month; the advisory lock serialises replicas racing on the same DDL.
CREATE FUNCTION lobe_ensure_usage_partition(ts timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    start_ts timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    end_ts   timestamptz := (date_trunc('month', ts AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    part     text := format('usage_ledger_y%sm%s', to_char(start_ts AT TIME ZONE 'UTC', 'YYYY'),
                            to_char(start_ts AT TIME ZONE 'UTC', 'MM'));
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('lobe_ensure_usage_partition'));
    IF to_regclass(part) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF usage_ledger FOR VALUES FROM (%L) TO (%L)',
                       part, start_ts, end_ts);
    END IF;
    RETURN part;
END;
$$;

-- What the usage API reads: totals per user, period, provider and model.
CREATE TABLE usage_rollups (
    user_id            text NOT NULL,
    period             text NOT NULL,
    provider           text NOT NULL,
    model              text NOT NULL,
    requests           bigint NOT NULL DEFAULT 0,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    cached_tokens      bigint NOT NULL DEFAULT 0,
    cost_usd           numeric(24, 10) NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, period, provider, model)
);

-- One row per user and period: the row budget admission locks. A new period key is a new row,
-- which is how usage rolls over without a reset job.
CREATE TABLE usage_periods (
    user_id        text NOT NULL,
    period         text NOT NULL,
    requests       bigint NOT NULL DEFAULT 0,
    tokens         bigint NOT NULL DEFAULT 0,
    cost_usd       numeric(24, 10) NOT NULL DEFAULT 0,
    reserved_usd   numeric(24, 10) NOT NULL DEFAULT 0,
    reserved_requests bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, period)
);

-- Open budget holds: settled (deleted) by the usage event of the same request, released by the
-- gateway on failure, or expired by the sweeper.
CREATE TABLE reservations (
    request_id   text PRIMARY KEY,
    user_id      text NOT NULL,
    period       text NOT NULL,
    amount_usd   numeric(24, 10) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX reservations_expiry_idx ON reservations (expires_at);
