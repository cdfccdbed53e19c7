-- The bar decant is measured against: the example game migrated by
-- PostgreSQL alone, set-based, without validation or verification. One
-- statement: each blob is read and decompressed once (the MATERIALIZED
-- CTE), then every target table is filled with INSERT ... SELECT over
-- jsonb_each, and the blobs are cut down and flagged. Invalid values are
-- skipped by type guards instead of failing the statement.
-- {{FILTER}} restricts the users: the whole table, or one batch.
WITH parts AS MATERIALIZED (
    SELECT id,
           data -> 'xp' AS xp,
           data #> '{marriage,stats}' AS stats,
           data #> '{marriage,achievements}' AS ach,
           data #> '{marriage,config}' AS cfg,
           data -> 'bots' AS bots,
           data -> 'pref' AS pref
      FROM "user" WHERE NOT migrated AND {{FILTER}}
),
stats AS (
    INSERT INTO user_statistic (user_id, mode, statistic_id, value)
    SELECT p.id, m.key, s.key, s.value::numeric
      FROM parts p,
           jsonb_each(CASE WHEN jsonb_typeof(p.stats) = 'object' THEN p.stats END) m,
           jsonb_each(CASE WHEN jsonb_typeof(m.value) = 'object' THEN m.value END) s
     WHERE jsonb_typeof(s.value) = 'number'
    UNION ALL
    SELECT id, 'global', 'xp', xp::numeric FROM parts WHERE jsonb_typeof(xp) = 'number'
    UNION ALL
    SELECT id, 'global', 'lastPlayed', (stats -> 'lastPlayed')::numeric
      FROM parts WHERE jsonb_typeof(stats -> 'lastPlayed') = 'number'
),
achievements AS (
    INSERT INTO user_achievement (user_id, achievement_id, unlocked_at, progress, extra)
    SELECT p.id, a.key,
           to_timestamp((a.value ->> 'unlockedAt')::float8 / 1000),
           (a.value ->> 'progress')::int4,
           NULLIF(a.value - 'unlockedAt' - 'progress', '{}')
      FROM parts p,
           jsonb_each(CASE WHEN jsonb_typeof(p.ach) = 'object' THEN p.ach END) a
     WHERE jsonb_typeof(a.value) = 'object'
),
bots AS (
    INSERT INTO user_bot (user_id, bot_id, level, unlocked, extra)
    SELECT p.id, b.key, (b.value ->> 'level')::int2, (b.value ->> 'unlocked')::bool,
           NULLIF(b.value - 'level' - 'unlocked', '{}')
      FROM parts p,
           jsonb_each(CASE WHEN jsonb_typeof(p.bots) = 'object' THEN p.bots END) b
     WHERE b.key <> 'selected' AND jsonb_typeof(b.value) = 'object'
),
selected AS (
    INSERT INTO user_selected_bot (user_id, position, bot_id)
    SELECT p.id, (e.ord - 1)::int2, e.value #>> '{}'
      FROM parts p,
           jsonb_array_elements(CASE WHEN jsonb_typeof(p.bots -> 'selected') = 'array'
                                     THEN p.bots -> 'selected' END) WITH ORDINALITY e(value, ord)
),
prefs AS (
    INSERT INTO user_preference (user_id, key, value)
    SELECT p.id, k.key, k.value
      FROM parts p,
           jsonb_each(CASE WHEN jsonb_typeof(p.pref) = 'object' THEN p.pref END) k
),
config AS (
    INSERT INTO user_config (user_id, mans, mode, extra)
    SELECT id, (cfg ->> 'mans')::int2, cfg ->> 'mode', NULLIF(cfg - 'mans' - 'mode', '{}')
      FROM parts WHERE jsonb_typeof(cfg) = 'object'
)
UPDATE "user" u
   SET migrated = true,
       data = (u.data - 'xp' - 'bots' - 'pref') #- '{marriage}'
  FROM parts p
 WHERE u.id = p.id
