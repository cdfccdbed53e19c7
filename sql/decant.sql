-- decant's own objects: per-user migration state and the live control row.
-- A type written with the comment "id" before it is the user id's type:
-- `decant init` writes the spec's `[source] id_type` there (bigint for
-- integer ids, uuid or text).
-- Applied by `decant init`; every statement is idempotent.

CREATE SCHEMA IF NOT EXISTS decant;

-- One row per user decant has touched. The source row's flag is the truth
-- about which code path serves a user; this table says how it got there.
CREATE TABLE IF NOT EXISTS decant.user_state (
    user_id     /*id*/bigint PRIMARY KEY,
    state       text        NOT NULL CHECK (state IN ('legacy', 'migrated', 'failed', 'held')),
    attempts    integer     NOT NULL DEFAULT 0,
    reason      text,        -- the failure without user-specific detail, for grouping
    last_error  text,        -- the full message of the last failure
    warnings    jsonb,       -- values kept in the residual by `keep` rules
    migrated_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- what the fixups did to a migrated user's blob (what rollback undoes)
ALTER TABLE decant.user_state ADD COLUMN IF NOT EXISTS fixups jsonb;
-- the fingerprint of the mapping that migrated the user
ALTER TABLE decant.user_state ADD COLUMN IF NOT EXISTS fingerprint text;
CREATE INDEX IF NOT EXISTS user_state_failed_idx
    ON decant.user_state (reason) WHERE state = 'failed';
-- 'held': rolled back, held out of the migration until `decant release`
-- (added after the first release: widen the check of an older table)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'user_state_state_check'
                     AND conrelid = 'decant.user_state'::regclass
                     AND pg_get_constraintdef(oid) LIKE '%held%') THEN
        ALTER TABLE decant.user_state DROP CONSTRAINT IF EXISTS user_state_state_check;
        ALTER TABLE decant.user_state ADD CONSTRAINT user_state_state_check
            CHECK (state IN ('legacy', 'migrated', 'failed', 'held'));
    END IF;
END $$;

-- The single control row every worker of every process reads (pause, rate,
-- batch size, rollout); changed by `decant pause|resume|set`.
CREATE TABLE IF NOT EXISTS decant.control (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    paused          boolean     NOT NULL DEFAULT false,
    rate            text        NOT NULL DEFAULT 'max',
    batch_size      integer,    -- NULL: adaptive
    rollout_percent real        NOT NULL DEFAULT 0 CHECK (rollout_percent BETWEEN 0 AND 100),
    allow_list      /*id*/bigint[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO decant.control DEFAULT VALUES ON CONFLICT DO NOTHING;
-- Finalized: every user migrated and verified; the cross-user views then
-- read the tables alone (their legacy arms test this once per query).
ALTER TABLE decant.control ADD COLUMN IF NOT EXISTS finalized boolean NOT NULL DEFAULT false;
-- The mapping recorded by init (its canonical lines and their fingerprint):
-- commands refuse a spec whose mapping differs while users depend on it.
ALTER TABLE decant.control ADD COLUMN IF NOT EXISTS spec_fingerprint text;
ALTER TABLE decant.control ADD COLUMN IF NOT EXISTS spec_mapping text;
-- The spec's text as init last applied it: `decant status` runs without the
-- file (on an operator's laptop, in a cron job).
ALTER TABLE decant.control ADD COLUMN IF NOT EXISTS spec_text text;
-- The low-traffic windows every daemon started without --window obeys
-- ("01:00-05:00,13:00-14:00"; empty: always open) and their time zone.
ALTER TABLE decant.control ADD COLUMN IF NOT EXISTS windows text NOT NULL DEFAULT '';
ALTER TABLE decant.control ADD COLUMN IF NOT EXISTS tz text NOT NULL DEFAULT 'UTC';

-- Running daemons, one row each, beating every second: the control row's
-- rate is shared among the live ones (two daemons at 40/s migrate 40 users/s
-- in all), and `decant status` lists them. A row whose beat is older than
-- 5 s is a daemon gone (killed); the next daemon to start removes it.
CREATE TABLE IF NOT EXISTS decant.daemon (
    id          text        PRIMARY KEY,   -- host:pid:start:n
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    job         text        NOT NULL,      -- migrate, rollback, evolve
    workers     integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    beat_at     timestamptz NOT NULL DEFAULT now(),
    migrated    bigint      NOT NULL DEFAULT 0,
    failed      bigint      NOT NULL DEFAULT 0,
    rate_share  text,                      -- its share of the rate
    holding     text                       -- why it holds back, if it does
);
-- The windows a daemon started with --window obeys instead of the control
-- row's (NULL: the control row's), for status's projection.
ALTER TABLE decant.daemon ADD COLUMN IF NOT EXISTS windows text;
ALTER TABLE decant.daemon ADD COLUMN IF NOT EXISTS tz text;

-- The daemons' shared pass over the legacy users: the furthest user any
-- worker of any daemon has read for a batch. A worker reads its next batch
-- (without locking it, to explode it before it locks it) after this user,
-- under this row's lock, and moves it on: no two workers read and explode
-- the same users, in one process or across hosts.
CREATE TABLE IF NOT EXISTS decant.pass (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    furthest /*id*/bigint
);
INSERT INTO decant.pass DEFAULT VALUES ON CONFLICT DO NOTHING;

-- Rollout: a uniform, stable bucket 0..9999 per user id (from md5, the same
-- on every server and version), and whether a user is in the rollout now.
CREATE OR REPLACE FUNCTION decant.rollout_bucket(uid /*id*/bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT (('x' || substr(md5(uid::text), 1, 8))::bit(32)::bigint % 10000)::integer $$;

CREATE OR REPLACE FUNCTION decant.in_rollout(uid /*id*/bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT decant.rollout_bucket(uid) < round(c.rollout_percent * 100) OR uid = ANY (c.allow_list)
     FROM decant.control c $$;
