-- Usage resets (`lobe admin reset-usage`, POST /v1/admin/users/{id}/reset-usage): an admin closes a
-- user's current period and opens a new one inside the same calendar period. The n-th reset in a
-- calendar period opens `<calendar key>.<n>` (2026-11.1); ledger rows, rollups, period totals and
-- holds carry the key of the period they count in, so the ledger keeps every row and limits count
-- from the reset (lobe.billing.periods).
CREATE TABLE usage_resets (
    user_id     text NOT NULL,
    base        text NOT NULL,
    seq         integer NOT NULL CHECK (seq > 0),
    period      text NOT NULL,
    started_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, base, seq)
);

-- A closed period takes no new hold: a hold racing a reset finds its period row closed under the
-- row lock, is refused there and is taken again in the new period (lobe.billing.budgets). Usage
-- that occurred in the period still counts in it.
ALTER TABLE usage_periods ADD COLUMN closed_at timestamptz;
