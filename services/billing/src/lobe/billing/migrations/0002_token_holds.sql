-- Token limits are enforced at admission like cost and requests: a hold also reserves the
-- request's worst-case tokens (prompt estimate + output cap) until its usage event settles it.
ALTER TABLE usage_periods ADD COLUMN reserved_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE reservations ADD COLUMN tokens bigint NOT NULL DEFAULT 0;
