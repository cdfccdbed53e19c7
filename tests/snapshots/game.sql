-- lock_wait
SELECT "id"::bigint, "data", "migrated" FROM "public"."user" WHERE "id" = ANY($1::bigint[]) ORDER BY "id" FOR NO KEY UPDATE;

-- lock_skip
SELECT "id"::bigint, "data", "migrated" FROM "public"."user" WHERE "id" = ANY($1::bigint[]) ORDER BY "id" FOR NO KEY UPDATE SKIP LOCKED;

-- claim
SELECT s."id"::bigint, s."data", s."migrated" FROM "public"."user" AS s WHERE NOT s."migrated" AND s."id" > $1::bigint AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND st.user_id > $1::bigint AND (st.state = 'held' OR (st.state = 'failed' AND (st.attempts >= $2 OR st.updated_at >= $3)))) ORDER BY s."id" LIMIT $4 FOR NO KEY UPDATE OF s SKIP LOCKED;

-- claim_rollout
SELECT s."id"::bigint, s."data", s."migrated" FROM "public"."user" AS s WHERE NOT s."migrated" AND s."id" > $1::bigint AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND st.user_id > $1::bigint AND (st.state = 'held' OR (st.state = 'failed' AND (st.attempts >= $2 OR st.updated_at >= $3)))) AND decant.in_rollout(s."id") ORDER BY s."id" LIMIT $4 FOR NO KEY UPDATE OF s SKIP LOCKED;

-- claim_first
SELECT s."id"::bigint, s."data", s."migrated" FROM "public"."user" AS s WHERE NOT s."migrated" AND $1::bigint IS NULL AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND $1::bigint IS NULL AND (st.state = 'held' OR (st.state = 'failed' AND (st.attempts >= $2 OR st.updated_at >= $3)))) ORDER BY s."id" LIMIT $4 FOR NO KEY UPDATE OF s SKIP LOCKED;

-- claim_rollout_first
SELECT s."id"::bigint, s."data", s."migrated" FROM "public"."user" AS s WHERE NOT s."migrated" AND $1::bigint IS NULL AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND $1::bigint IS NULL AND (st.state = 'held' OR (st.state = 'failed' AND (st.attempts >= $2 OR st.updated_at >= $3)))) AND decant.in_rollout(s."id") ORDER BY s."id" LIMIT $4 FOR NO KEY UPDATE OF s SKIP LOCKED;

-- peek
SELECT p.i, p.b, p.f, p.v, p.z, p.m FROM (SELECT q.i, q.b, q.f, q.v, q.z, sum(q.z) OVER w AS upto, row_number() OVER w AS n, count(*) OVER () AS m FROM (SELECT s."id"::bigint AS i, s."data" AS b, s."migrated" AS f, s.xmin::text AS v, coalesce(pg_column_size(s."data"), 0) AS z FROM "public"."user" AS s WHERE NOT s."migrated" AND s."id" > $1::bigint AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND st.user_id > $1::bigint AND (st.state = 'held' OR (st.state = 'failed' AND (st.attempts >= $2 OR st.updated_at >= $3)))) ORDER BY s."id" LIMIT $4) AS q WINDOW w AS (ORDER BY q.i ROWS UNBOUNDED PRECEDING)) AS p WHERE p.n = 1 OR p.upto <= $5::bigint ORDER BY p.i;

-- peek_rollout
SELECT p.i, p.b, p.f, p.v, p.z, p.m FROM (SELECT q.i, q.b, q.f, q.v, q.z, sum(q.z) OVER w AS upto, row_number() OVER w AS n, count(*) OVER () AS m FROM (SELECT s."id"::bigint AS i, s."data" AS b, s."migrated" AS f, s.xmin::text AS v, coalesce(pg_column_size(s."data"), 0) AS z FROM "public"."user" AS s WHERE NOT s."migrated" AND s."id" > $1::bigint AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND st.user_id > $1::bigint AND (st.state = 'held' OR (st.state = 'failed' AND (st.attempts >= $2 OR st.updated_at >= $3)))) AND decant.in_rollout(s."id") ORDER BY s."id" LIMIT $4) AS q WINDOW w AS (ORDER BY q.i ROWS UNBOUNDED PRECEDING)) AS p WHERE p.n = 1 OR p.upto <= $5::bigint ORDER BY p.i;

-- peek_first
SELECT p.i, p.b, p.f, p.v, p.z, p.m FROM (SELECT q.i, q.b, q.f, q.v, q.z, sum(q.z) OVER w AS upto, row_number() OVER w AS n, count(*) OVER () AS m FROM (SELECT s."id"::bigint AS i, s."data" AS b, s."migrated" AS f, s.xmin::text AS v, coalesce(pg_column_size(s."data"), 0) AS z FROM "public"."user" AS s WHERE NOT s."migrated" AND $1::bigint IS NULL AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND $1::bigint IS NULL AND (st.state = 'held' OR (st.state = 'failed' AND (st.attempts >= $2 OR st.updated_at >= $3)))) ORDER BY s."id" LIMIT $4) AS q WINDOW w AS (ORDER BY q.i ROWS UNBOUNDED PRECEDING)) AS p WHERE p.n = 1 OR p.upto <= $5::bigint ORDER BY p.i;

-- peek_rollout_first
SELECT p.i, p.b, p.f, p.v, p.z, p.m FROM (SELECT q.i, q.b, q.f, q.v, q.z, sum(q.z) OVER w AS upto, row_number() OVER w AS n, count(*) OVER () AS m FROM (SELECT s."id"::bigint AS i, s."data" AS b, s."migrated" AS f, s.xmin::text AS v, coalesce(pg_column_size(s."data"), 0) AS z FROM "public"."user" AS s WHERE NOT s."migrated" AND $1::bigint IS NULL AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND $1::bigint IS NULL AND (st.state = 'held' OR (st.state = 'failed' AND (st.attempts >= $2 OR st.updated_at >= $3)))) AND decant.in_rollout(s."id") ORDER BY s."id" LIMIT $4) AS q WINDOW w AS (ORDER BY q.i ROWS UNBOUNDED PRECEDING)) AS p WHERE p.n = 1 OR p.upto <= $5::bigint ORDER BY p.i;

-- relock
SELECT s."id"::bigint, s.xmin::text FROM "public"."user" AS s WHERE s."id" = ANY($1::bigint[]) AND NOT s."migrated" AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND (st.state = 'held' OR (st.state = 'failed' AND (st.attempts >= $2 OR st.updated_at >= $3)))) AND ($4 = false OR decant.in_rollout(s."id")) FOR NO KEY UPDATE OF s SKIP LOCKED;

-- pass_read
SELECT furthest::bigint FROM decant.pass FOR UPDATE;

-- pass_move
UPDATE decant.pass SET furthest = $1::bigint;

-- claimable
SELECT count(*) FROM "public"."user" AS s WHERE NOT s."migrated" AND $1::bigint IS NULL AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND $1::bigint IS NULL AND (st.state = 'held' OR (st.state = 'failed' AND (st.attempts >= $2 OR st.updated_at >= $3)))) AND ($4 = false OR decant.in_rollout(s."id"));

-- user_counts
SELECT count(*), count(*) FILTER (WHERE "migrated") FROM "public"."user";

-- exists
SELECT EXISTS (SELECT 1 FROM "public"."user" WHERE "id" = $1::bigint);

-- snapshot
SELECT s."id"::bigint, s."data", s."migrated", coalesce(r.t0_n, 0), r.t0_a0, r.t0_a1, r.t0_a2, r.t0_a3, coalesce(r.t1_n, 0), r.t1_a0, r.t1_a1, r.t1_a2, r.t1_a3, coalesce(r.t2_n, 0), r.t2_a0, r.t2_a1, r.t2_a2, coalesce(r.t3_n, 0), r.t3_a0, r.t3_a1, coalesce(r.t4_n, 0), r.t4_a0, r.t4_a1, coalesce(r.t5_n, 0), r.t5_a0, r.t5_a1, r.t5_a2 FROM "public"."user" AS s LEFT JOIN LATERAL (SELECT * FROM decant."rows_b13d81d3_user"(s."id"::bigint) WHERE s."migrated" OFFSET 0) AS r ON true WHERE s."id" = ANY($1::bigint[]) ORDER BY s."id";

-- census_ids
SELECT s."id"::bigint, s."data", s."migrated", t0.n, t0.a0, t0.a1, t0.a2, t0.a3, t1.n, t1.a0, t1.a1, t1.a2, t1.a3, t2.n, t2.a0, t2.a1, t2.a2, t3.n, t3.a0, t3.a1, t4.n, t4.a0, t4.a1, t5.n, t5.a0, t5.a1, t5.a2 FROM "public"."user" AS s CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."achievement_id") AS a0, array_agg(x."extra") AS a1, array_agg(x."progress") AS a2, array_agg(x."unlocked_at") AS a3 FROM "public"."user_achievement" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t0 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."bot_id") AS a0, array_agg(x."extra") AS a1, array_agg(x."level") AS a2, array_agg(x."unlocked") AS a3 FROM "public"."user_bot" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t1 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."extra") AS a0, array_agg(x."mans") AS a1, array_agg(x."mode") AS a2 FROM "public"."user_config" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t2 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."key") AS a0, array_agg(x."value") AS a1 FROM "public"."user_preference" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t3 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."bot_id") AS a0, array_agg(x."position") AS a1 FROM "public"."user_selected_bot" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t4 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."mode") AS a0, array_agg(x."statistic_id") AS a1, array_agg(x."value"::text) AS a2 FROM "public"."user_statistic" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t5 WHERE s."id" = ANY($1::bigint[]) ORDER BY s."id";

-- snapshot_one
SELECT s."id"::bigint, s."data", s."migrated", coalesce(r.t0_n, 0), r.t0_a0, r.t0_a1, r.t0_a2, r.t0_a3, coalesce(r.t1_n, 0), r.t1_a0, r.t1_a1, r.t1_a2, r.t1_a3, coalesce(r.t2_n, 0), r.t2_a0, r.t2_a1, r.t2_a2, coalesce(r.t3_n, 0), r.t3_a0, r.t3_a1, coalesce(r.t4_n, 0), r.t4_a0, r.t4_a1, coalesce(r.t5_n, 0), r.t5_a0, r.t5_a1, r.t5_a2 FROM "public"."user" AS s LEFT JOIN LATERAL (SELECT * FROM decant."rows_b13d81d3_user"(s."id"::bigint) WHERE s."migrated" OFFSET 0) AS r ON true WHERE s."id" = $1::bigint ORDER BY s."id";

-- page
SELECT s."id"::bigint, s."data", s."migrated", t0.n, t0.a0, t0.a1, t0.a2, t0.a3, t1.n, t1.a0, t1.a1, t1.a2, t1.a3, t2.n, t2.a0, t2.a1, t2.a2, t3.n, t3.a0, t3.a1, t4.n, t4.a0, t4.a1, t5.n, t5.a0, t5.a1, t5.a2 FROM "public"."user" AS s CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."achievement_id") AS a0, array_agg(x."extra") AS a1, array_agg(x."progress") AS a2, array_agg(x."unlocked_at") AS a3 FROM "public"."user_achievement" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t0 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."bot_id") AS a0, array_agg(x."extra") AS a1, array_agg(x."level") AS a2, array_agg(x."unlocked") AS a3 FROM "public"."user_bot" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t1 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."extra") AS a0, array_agg(x."mans") AS a1, array_agg(x."mode") AS a2 FROM "public"."user_config" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t2 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."key") AS a0, array_agg(x."value") AS a1 FROM "public"."user_preference" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t3 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."bot_id") AS a0, array_agg(x."position") AS a1 FROM "public"."user_selected_bot" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t4 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."mode") AS a0, array_agg(x."statistic_id") AS a1, array_agg(x."value"::text) AS a2 FROM "public"."user_statistic" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t5 WHERE s."id" > $1::bigint ORDER BY s."id" LIMIT $2;

-- page_first
SELECT s."id"::bigint, s."data", s."migrated", t0.n, t0.a0, t0.a1, t0.a2, t0.a3, t1.n, t1.a0, t1.a1, t1.a2, t1.a3, t2.n, t2.a0, t2.a1, t2.a2, t3.n, t3.a0, t3.a1, t4.n, t4.a0, t4.a1, t5.n, t5.a0, t5.a1, t5.a2 FROM "public"."user" AS s CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."achievement_id") AS a0, array_agg(x."extra") AS a1, array_agg(x."progress") AS a2, array_agg(x."unlocked_at") AS a3 FROM "public"."user_achievement" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t0 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."bot_id") AS a0, array_agg(x."extra") AS a1, array_agg(x."level") AS a2, array_agg(x."unlocked") AS a3 FROM "public"."user_bot" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t1 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."extra") AS a0, array_agg(x."mans") AS a1, array_agg(x."mode") AS a2 FROM "public"."user_config" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t2 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."key") AS a0, array_agg(x."value") AS a1 FROM "public"."user_preference" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t3 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."bot_id") AS a0, array_agg(x."position") AS a1 FROM "public"."user_selected_bot" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t4 CROSS JOIN LATERAL (SELECT count(*) AS n, array_agg(x."mode") AS a0, array_agg(x."statistic_id") AS a1, array_agg(x."value"::text) AS a2 FROM "public"."user_statistic" AS x WHERE s."migrated" AND x."user_id" = s."id") AS t5 WHERE s."id" IS NOT NULL AND $1::bigint IS NULL ORDER BY s."id" LIMIT $2;

-- has_rows
SELECT u.id, t.name FROM unnest($1::bigint[]) AS u(id) CROSS JOIN LATERAL (SELECT 'user_achievement'::text AS name WHERE EXISTS (SELECT 1 FROM "public"."user_achievement" AS x WHERE x."user_id" = u.id) UNION ALL SELECT 'user_bot'::text AS name WHERE EXISTS (SELECT 1 FROM "public"."user_bot" AS x WHERE x."user_id" = u.id) UNION ALL SELECT 'user_config'::text AS name WHERE EXISTS (SELECT 1 FROM "public"."user_config" AS x WHERE x."user_id" = u.id) UNION ALL SELECT 'user_preference'::text AS name WHERE EXISTS (SELECT 1 FROM "public"."user_preference" AS x WHERE x."user_id" = u.id) UNION ALL SELECT 'user_selected_bot'::text AS name WHERE EXISTS (SELECT 1 FROM "public"."user_selected_bot" AS x WHERE x."user_id" = u.id) UNION ALL SELECT 'user_statistic'::text AS name WHERE EXISTS (SELECT 1 FROM "public"."user_statistic" AS x WHERE x."user_id" = u.id) LIMIT 1) AS t;

-- rows_one
SELECT s."id"::bigint, NULL::jsonb, s."migrated", coalesce(r.t0_n, 0), r.t0_a0, r.t0_a1, r.t0_a2, r.t0_a3, coalesce(r.t1_n, 0), r.t1_a0, r.t1_a1, r.t1_a2, r.t1_a3, coalesce(r.t2_n, 0), r.t2_a0, r.t2_a1, r.t2_a2, coalesce(r.t3_n, 0), r.t3_a0, r.t3_a1, coalesce(r.t4_n, 0), r.t4_a0, r.t4_a1, coalesce(r.t5_n, 0), r.t5_a0, r.t5_a1, r.t5_a2 FROM "public"."user" AS s LEFT JOIN LATERAL (SELECT * FROM decant."rows_b13d81d3_user"(s."id"::bigint) WHERE s."migrated" OFFSET 0) AS r ON true WHERE s."id" = $1::bigint ORDER BY s."id";

-- lock_call
SELECT "id"::bigint, "data", "migrated", coalesce(NOT "migrated" AND decant.in_rollout("id") AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = "id" AND (st.state = 'held' OR (st.state = 'failed' AND st.attempts >= $2))) AND NOT (SELECT c.finalized OR c.paused FROM decant.control AS c), false) FROM "public"."user" WHERE "id" = $1::bigint FOR NO KEY UPDATE;

-- on_demand_again
SELECT coalesce(NOT "migrated" AND decant.in_rollout("id") AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = "id" AND (st.state = 'held' OR (st.state = 'failed' AND st.attempts >= $2))) AND NOT (SELECT c.finalized OR c.paused FROM decant.control AS c), false) FROM "public"."user" WHERE "id" = $1::bigint;

-- write_one
UPDATE "public"."user" SET "data" = $2::jsonb, "migrated" = $3::boolean WHERE "id" = $1::bigint;

-- write_blobs
UPDATE "public"."user" AS s SET "data" = CASE WHEN v.sql_null AND (SELECT NOT a.attnotnull FROM pg_attribute AS a WHERE a.attrelid = '"public"."user"'::regclass AND a.attname = 'data') THEN NULL ELSE v.blob END, "migrated" = v.migrated FROM unnest($1::bigint[], $2::jsonb[], $3::bool[], $4::bool[]) AS v(id, blob, migrated, sql_null) WHERE s."id" = v.id RETURNING s."id";

-- plain_check
SELECT NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = ANY (r.o) AND NOT tgisinternal) AND NOT EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class = ANY (r.o)) AND NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = ANY (r.o) AND relkind <> 'r') AND coalesce((SELECT bool_and(coalesce(e.ty = (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = e.t AND a.attname = e.col AND NOT a.attisdropped), false)) FROM unnest(r.o, $2::text[], $3::text[]) AS e(t, col, ty)), true) FROM (SELECT $1::text[]::regclass[]::oid[] AS o) AS r;

-- plain_params: "public"."user_achievement" user_id bigint
-- plain_params: "public"."user_achievement" achievement_id text
-- plain_params: "public"."user_achievement" extra jsonb
-- plain_params: "public"."user_achievement" progress integer
-- plain_params: "public"."user_achievement" unlocked_at timestamp with time zone
-- plain_params: "public"."user_bot" user_id bigint
-- plain_params: "public"."user_bot" bot_id text
-- plain_params: "public"."user_bot" extra jsonb
-- plain_params: "public"."user_bot" level smallint
-- plain_params: "public"."user_bot" unlocked boolean
-- plain_params: "public"."user_config" user_id bigint
-- plain_params: "public"."user_config" extra jsonb
-- plain_params: "public"."user_config" mans smallint
-- plain_params: "public"."user_config" mode text
-- plain_params: "public"."user_preference" user_id bigint
-- plain_params: "public"."user_preference" key text
-- plain_params: "public"."user_preference" value jsonb
-- plain_params: "public"."user_selected_bot" user_id bigint
-- plain_params: "public"."user_selected_bot" bot_id text
-- plain_params: "public"."user_selected_bot" position smallint
-- plain_params: "public"."user_statistic" user_id bigint
-- plain_params: "public"."user_statistic" mode text
-- plain_params: "public"."user_statistic" statistic_id text
-- plain_params: "public"."user_statistic" value numeric

-- user_achievement.copy
COPY "public"."user_achievement" ("user_id", "achievement_id", "extra", "progress", "unlocked_at") FROM STDIN (FORMAT binary);

-- user_achievement.insert
INSERT INTO "public"."user_achievement" ("user_id", "achievement_id", "extra", "progress", "unlocked_at") SELECT u, c0, c1, c2, c3 FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::integer[], $5::timestamp with time zone[]) AS v(u, c0, c1, c2, c3);

-- user_achievement.insert_returning
INSERT INTO "public"."user_achievement" ("user_id", "achievement_id", "extra", "progress", "unlocked_at") SELECT u, c0, c1, c2, c3 FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::integer[], $5::timestamp with time zone[]) AS v(u, c0, c1, c2, c3) RETURNING "user_id", "achievement_id", "extra", "progress", "unlocked_at";

-- user_achievement.upsert
INSERT INTO "public"."user_achievement" ("user_id", "achievement_id", "extra", "progress", "unlocked_at") SELECT u, c0, c1, c2, c3 FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::integer[], $5::timestamp with time zone[]) AS v(u, c0, c1, c2, c3) ON CONFLICT ("user_id", "achievement_id") DO UPDATE SET "extra" = EXCLUDED."extra", "progress" = EXCLUDED."progress", "unlocked_at" = EXCLUDED."unlocked_at";

-- user_achievement.select
SELECT "user_id", "achievement_id", "extra", "progress", "unlocked_at" FROM "public"."user_achievement" WHERE "user_id" = ANY($1::bigint[]);

-- user_achievement.delete_users
DELETE FROM "public"."user_achievement" WHERE "user_id" = ANY($1::bigint[]);

-- user_achievement.delete_keys
DELETE FROM "public"."user_achievement" WHERE "user_id" = $1 AND ("achievement_id") IN (SELECT k0 FROM unnest($2::text[]) AS v(k0));

-- user_bot.copy
COPY "public"."user_bot" ("user_id", "bot_id", "extra", "level", "unlocked") FROM STDIN (FORMAT binary);

-- user_bot.insert
INSERT INTO "public"."user_bot" ("user_id", "bot_id", "extra", "level", "unlocked") SELECT u, c0, c1, c2, c3 FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::smallint[], $5::boolean[]) AS v(u, c0, c1, c2, c3);

-- user_bot.insert_returning
INSERT INTO "public"."user_bot" ("user_id", "bot_id", "extra", "level", "unlocked") SELECT u, c0, c1, c2, c3 FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::smallint[], $5::boolean[]) AS v(u, c0, c1, c2, c3) RETURNING "user_id", "bot_id", "extra", "level", "unlocked";

-- user_bot.upsert
INSERT INTO "public"."user_bot" ("user_id", "bot_id", "extra", "level", "unlocked") SELECT u, c0, c1, c2, c3 FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $4::smallint[], $5::boolean[]) AS v(u, c0, c1, c2, c3) ON CONFLICT ("user_id", "bot_id") DO UPDATE SET "extra" = EXCLUDED."extra", "level" = EXCLUDED."level", "unlocked" = EXCLUDED."unlocked";

-- user_bot.select
SELECT "user_id", "bot_id", "extra", "level", "unlocked" FROM "public"."user_bot" WHERE "user_id" = ANY($1::bigint[]);

-- user_bot.delete_users
DELETE FROM "public"."user_bot" WHERE "user_id" = ANY($1::bigint[]);

-- user_bot.delete_keys
DELETE FROM "public"."user_bot" WHERE "user_id" = $1 AND ("bot_id") IN (SELECT k0 FROM unnest($2::text[]) AS v(k0));

-- user_config.copy
COPY "public"."user_config" ("user_id", "extra", "mans", "mode") FROM STDIN (FORMAT binary);

-- user_config.insert
INSERT INTO "public"."user_config" ("user_id", "extra", "mans", "mode") SELECT u, c0, c1, c2 FROM unnest($1::bigint[], $2::jsonb[], $3::smallint[], $4::text[]) AS v(u, c0, c1, c2);

-- user_config.insert_returning
INSERT INTO "public"."user_config" ("user_id", "extra", "mans", "mode") SELECT u, c0, c1, c2 FROM unnest($1::bigint[], $2::jsonb[], $3::smallint[], $4::text[]) AS v(u, c0, c1, c2) RETURNING "user_id", "extra", "mans", "mode";

-- user_config.upsert
INSERT INTO "public"."user_config" ("user_id", "extra", "mans", "mode") SELECT u, c0, c1, c2 FROM unnest($1::bigint[], $2::jsonb[], $3::smallint[], $4::text[]) AS v(u, c0, c1, c2) ON CONFLICT ("user_id") DO UPDATE SET "extra" = EXCLUDED."extra", "mans" = EXCLUDED."mans", "mode" = EXCLUDED."mode";

-- user_config.select
SELECT "user_id", "extra", "mans", "mode" FROM "public"."user_config" WHERE "user_id" = ANY($1::bigint[]);

-- user_config.delete_users
DELETE FROM "public"."user_config" WHERE "user_id" = ANY($1::bigint[]);

-- user_preference.copy
COPY "public"."user_preference" ("user_id", "key", "value") FROM STDIN (FORMAT binary);

-- user_preference.insert
INSERT INTO "public"."user_preference" ("user_id", "key", "value") SELECT u, c0, c1 FROM unnest($1::bigint[], $2::text[], $3::jsonb[]) AS v(u, c0, c1);

-- user_preference.insert_returning
INSERT INTO "public"."user_preference" ("user_id", "key", "value") SELECT u, c0, c1 FROM unnest($1::bigint[], $2::text[], $3::jsonb[]) AS v(u, c0, c1) RETURNING "user_id", "key", "value";

-- user_preference.upsert
INSERT INTO "public"."user_preference" ("user_id", "key", "value") SELECT u, c0, c1 FROM unnest($1::bigint[], $2::text[], $3::jsonb[]) AS v(u, c0, c1) ON CONFLICT ("user_id", "key") DO UPDATE SET "value" = EXCLUDED."value";

-- user_preference.select
SELECT "user_id", "key", "value" FROM "public"."user_preference" WHERE "user_id" = ANY($1::bigint[]);

-- user_preference.delete_users
DELETE FROM "public"."user_preference" WHERE "user_id" = ANY($1::bigint[]);

-- user_preference.delete_keys
DELETE FROM "public"."user_preference" WHERE "user_id" = $1 AND ("key") IN (SELECT k0 FROM unnest($2::text[]) AS v(k0));

-- user_selected_bot.copy
COPY "public"."user_selected_bot" ("user_id", "bot_id", "position") FROM STDIN (FORMAT binary);

-- user_selected_bot.insert
INSERT INTO "public"."user_selected_bot" ("user_id", "bot_id", "position") SELECT u, c0, c1 FROM unnest($1::bigint[], $2::text[], $3::smallint[]) AS v(u, c0, c1);

-- user_selected_bot.insert_returning
INSERT INTO "public"."user_selected_bot" ("user_id", "bot_id", "position") SELECT u, c0, c1 FROM unnest($1::bigint[], $2::text[], $3::smallint[]) AS v(u, c0, c1) RETURNING "user_id", "bot_id", "position";

-- user_selected_bot.upsert
INSERT INTO "public"."user_selected_bot" ("user_id", "bot_id", "position") SELECT u, c0, c1 FROM unnest($1::bigint[], $2::text[], $3::smallint[]) AS v(u, c0, c1) ON CONFLICT ("user_id", "position") DO UPDATE SET "bot_id" = EXCLUDED."bot_id";

-- user_selected_bot.select
SELECT "user_id", "bot_id", "position" FROM "public"."user_selected_bot" WHERE "user_id" = ANY($1::bigint[]);

-- user_selected_bot.delete_users
DELETE FROM "public"."user_selected_bot" WHERE "user_id" = ANY($1::bigint[]);

-- user_selected_bot.delete_keys
DELETE FROM "public"."user_selected_bot" WHERE "user_id" = $1 AND ("position") IN (SELECT k0 FROM unnest($2::smallint[]) AS v(k0));

-- user_statistic.copy
COPY "public"."user_statistic" ("user_id", "mode", "statistic_id", "value") FROM STDIN (FORMAT binary);

-- user_statistic.insert
INSERT INTO "public"."user_statistic" ("user_id", "mode", "statistic_id", "value") SELECT u, c0, c1, c2::numeric FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS v(u, c0, c1, c2);

-- user_statistic.insert_returning
INSERT INTO "public"."user_statistic" ("user_id", "mode", "statistic_id", "value") SELECT u, c0, c1, c2::numeric FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS v(u, c0, c1, c2) RETURNING "user_id", "mode", "statistic_id", "value"::text;

-- user_statistic.upsert
INSERT INTO "public"."user_statistic" ("user_id", "mode", "statistic_id", "value") SELECT u, c0, c1, c2::numeric FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS v(u, c0, c1, c2) ON CONFLICT ("user_id", "mode", "statistic_id") DO UPDATE SET "value" = EXCLUDED."value";

-- user_statistic.select
SELECT "user_id", "mode", "statistic_id", "value"::text FROM "public"."user_statistic" WHERE "user_id" = ANY($1::bigint[]);

-- user_statistic.delete_users
DELETE FROM "public"."user_statistic" WHERE "user_id" = ANY($1::bigint[]);

-- user_statistic.delete_keys
DELETE FROM "public"."user_statistic" WHERE "user_id" = $1 AND ("mode", "statistic_id") IN (SELECT k0, k1 FROM unnest($2::text[], $3::text[]) AS v(k0, k1));

-- signals
SELECT
               (SELECT count(*) FROM pg_stat_activity a
                 WHERE $1::bool AND a.pid <> ALL ($2::int[])
                   AND pg_blocking_pids(a.pid) && $2::int[]),
               (SELECT coalesce(extract(epoch FROM max(replay_lag))::float8, 0) FROM pg_stat_replication),
               (SELECT count(*) FROM pg_stat_activity
                 WHERE state = 'active' AND backend_type = 'client backend'
                   AND pid <> pg_backend_pid() AND pid <> ALL ($2::int[])),
               (SELECT count(*) FROM pg_stat_activity a
                 WHERE a.backend_type = 'client backend'
                   AND ($3::bool OR a.datname = current_database())
                   AND a.pid <> pg_backend_pid() AND a.pid <> ALL ($2::int[])
                   AND (a.state = 'active' OR a.state_change > now() - interval '1 second')
                   AND a.wait_event IS DISTINCT FROM 'PgSleep'
                   AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid
                         AND l.locktype = 'advisory' AND l.classid = 1684366177
                         AND l.objid = 1 AND l.objsubid = 2)),
               (SELECT coalesce(sum(xact_commit + xact_rollback), 0)::int8 FROM pg_stat_database
                 WHERE $3::bool OR datname = current_database());

-- commit_probe
SELECT txid_current();

-- init statement 0
-- decant's own objects: per-user migration state and the live control row.
-- A type written with the comment "id" before it is the user id's type:
-- `decant init` writes the spec's `[source] id_type` there (bigint for
-- integer ids, uuid or text).
-- Applied by `decant init`; every statement is idempotent.

CREATE SCHEMA IF NOT EXISTS decant;

-- One row per user decant has touched. The source row's flag is the truth
-- about which code path serves a user; this table says how it got there.
CREATE TABLE IF NOT EXISTS decant.user_state (
    user_id     bigint PRIMARY KEY,
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
    allow_list      bigint[] NOT NULL DEFAULT '{}',
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
    furthest bigint
);
INSERT INTO decant.pass DEFAULT VALUES ON CONFLICT DO NOTHING;

-- Rollout: a uniform, stable bucket 0..9999 per user id (from md5, the same
-- on every server and version), and whether a user is in the rollout now.
CREATE OR REPLACE FUNCTION decant.rollout_bucket(uid bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT (('x' || substr(md5(uid::text), 1, 8))::bit(32)::bigint % 10000)::integer $$;

CREATE OR REPLACE FUNCTION decant.in_rollout(uid bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT decant.rollout_bucket(uid) < round(c.rollout_percent * 100) OR uid = ANY (c.allow_list)
     FROM decant.control c $$;;

-- init statement 1
ALTER TABLE "public"."user" ADD COLUMN IF NOT EXISTS "migrated" boolean NOT NULL DEFAULT false;

-- init statement 2
CREATE INDEX CONCURRENTLY IF NOT EXISTS "user_decant_legacy_idx" ON "public"."user" ("id") WHERE NOT "migrated";

-- init statement 3
CREATE TABLE IF NOT EXISTS "public"."user_achievement" (
    "user_id" bigint NOT NULL,
    "achievement_id" text NOT NULL,
    "extra" jsonb,
    "progress" integer,
    "unlocked_at" timestamp with time zone,
    PRIMARY KEY ("user_id", "achievement_id")
);

-- init statement 4
CREATE TABLE IF NOT EXISTS "public"."user_bot" (
    "user_id" bigint NOT NULL,
    "bot_id" text NOT NULL,
    "extra" jsonb,
    "level" smallint,
    "unlocked" boolean,
    PRIMARY KEY ("user_id", "bot_id")
);

-- init statement 5
CREATE TABLE IF NOT EXISTS "public"."user_config" (
    "user_id" bigint NOT NULL,
    "extra" jsonb,
    "mans" smallint,
    "mode" text,
    PRIMARY KEY ("user_id")
);

-- init statement 6
CREATE TABLE IF NOT EXISTS "public"."user_preference" (
    "user_id" bigint NOT NULL,
    "key" text NOT NULL,
    "value" jsonb,
    PRIMARY KEY ("user_id", "key")
);

-- init statement 7
CREATE TABLE IF NOT EXISTS "public"."user_selected_bot" (
    "user_id" bigint NOT NULL,
    "bot_id" text NOT NULL,
    "position" smallint NOT NULL,
    PRIMARY KEY ("user_id", "position")
);

-- init statement 8
CREATE TABLE IF NOT EXISTS "public"."user_statistic" (
    "user_id" bigint NOT NULL,
    "mode" text NOT NULL,
    "statistic_id" text NOT NULL,
    "value" numeric NOT NULL,
    PRIMARY KEY ("user_id", "mode", "statistic_id")
);

-- init statement 9
DO $decant$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_achievement"'::regclass AND a.attname = 'extra' AND a.attnotnull) THEN
        ALTER TABLE "public"."user_achievement" ALTER COLUMN "extra" DROP NOT NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_achievement"'::regclass AND a.attname = 'progress' AND a.attnotnull) THEN
        ALTER TABLE "public"."user_achievement" ALTER COLUMN "progress" DROP NOT NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_achievement"'::regclass AND a.attname = 'unlocked_at' AND a.attnotnull) THEN
        ALTER TABLE "public"."user_achievement" ALTER COLUMN "unlocked_at" DROP NOT NULL;
    END IF;
END
$decant$;

-- init statement 10
DO $decant$
DECLARE stale text;
BEGIN
    FOR stale IN SELECT conname FROM pg_constraint WHERE conrelid = '"public"."user_achievement"'::regclass AND contype IN ('c', 'f') AND left(conname, 7) = 'decant_' AND conname <> ALL (ARRAY['decant_ec41865c_progress']::text[]) LOOP
        EXECUTE format('ALTER TABLE "public"."user_achievement" DROP CONSTRAINT %I', stale);
    END LOOP;
END
$decant$;

-- init statement 11
DO $decant$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '"public"."user_achievement"'::regclass AND conname = 'decant_ec41865c_progress') THEN
        ALTER TABLE "public"."user_achievement" ADD CONSTRAINT "decant_ec41865c_progress" CHECK ("progress" >= '0'::numeric) NOT VALID;
    END IF;
END
$decant$;

-- init statement 12
ALTER TABLE "public"."user_achievement" VALIDATE CONSTRAINT "decant_ec41865c_progress";

-- init statement 13
DO $decant$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_bot"'::regclass AND a.attname = 'extra' AND a.attnotnull) THEN
        ALTER TABLE "public"."user_bot" ALTER COLUMN "extra" DROP NOT NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_bot"'::regclass AND a.attname = 'level' AND a.attnotnull) THEN
        ALTER TABLE "public"."user_bot" ALTER COLUMN "level" DROP NOT NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_bot"'::regclass AND a.attname = 'unlocked' AND a.attnotnull) THEN
        ALTER TABLE "public"."user_bot" ALTER COLUMN "unlocked" DROP NOT NULL;
    END IF;
END
$decant$;

-- init statement 14
DO $decant$
DECLARE stale text;
BEGIN
    FOR stale IN SELECT conname FROM pg_constraint WHERE conrelid = '"public"."user_bot"'::regclass AND contype IN ('c', 'f') AND left(conname, 7) = 'decant_' AND conname <> ALL (ARRAY['decant_d73d98db_level']::text[]) LOOP
        EXECUTE format('ALTER TABLE "public"."user_bot" DROP CONSTRAINT %I', stale);
    END LOOP;
END
$decant$;

-- init statement 15
DO $decant$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '"public"."user_bot"'::regclass AND conname = 'decant_d73d98db_level') THEN
        ALTER TABLE "public"."user_bot" ADD CONSTRAINT "decant_d73d98db_level" CHECK ("level" >= '0'::numeric AND "level" <= '100'::numeric) NOT VALID;
    END IF;
END
$decant$;

-- init statement 16
ALTER TABLE "public"."user_bot" VALIDATE CONSTRAINT "decant_d73d98db_level";

-- init statement 17
DO $decant$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_config"'::regclass AND a.attname = 'extra' AND a.attnotnull) THEN
        ALTER TABLE "public"."user_config" ALTER COLUMN "extra" DROP NOT NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_config"'::regclass AND a.attname = 'mans' AND a.attnotnull) THEN
        ALTER TABLE "public"."user_config" ALTER COLUMN "mans" DROP NOT NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_config"'::regclass AND a.attname = 'mode' AND a.attnotnull) THEN
        ALTER TABLE "public"."user_config" ALTER COLUMN "mode" DROP NOT NULL;
    END IF;
END
$decant$;

-- init statement 18
DO $decant$
DECLARE stale text;
BEGIN
    FOR stale IN SELECT conname FROM pg_constraint WHERE conrelid = '"public"."user_config"'::regclass AND contype IN ('c', 'f') AND left(conname, 7) = 'decant_' AND conname <> ALL (ARRAY['decant_74c7bfba_mans', 'decant_9f49ac2c_mode']::text[]) LOOP
        EXECUTE format('ALTER TABLE "public"."user_config" DROP CONSTRAINT %I', stale);
    END LOOP;
END
$decant$;

-- init statement 19
DO $decant$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '"public"."user_config"'::regclass AND conname = 'decant_74c7bfba_mans') THEN
        ALTER TABLE "public"."user_config" ADD CONSTRAINT "decant_74c7bfba_mans" CHECK ("mans" >= '0'::numeric) NOT VALID;
    END IF;
END
$decant$;

-- init statement 20
ALTER TABLE "public"."user_config" VALIDATE CONSTRAINT "decant_74c7bfba_mans";

-- init statement 21
DO $decant$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '"public"."user_config"'::regclass AND conname = 'decant_9f49ac2c_mode') THEN
        ALTER TABLE "public"."user_config" ADD CONSTRAINT "decant_9f49ac2c_mode" CHECK ("mode" IN ('kidnap', 'murder', 'classic')) NOT VALID;
    END IF;
END
$decant$;

-- init statement 22
ALTER TABLE "public"."user_config" VALIDATE CONSTRAINT "decant_9f49ac2c_mode";

-- init statement 23
DO $decant$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_preference"'::regclass AND a.attname = 'value' AND a.attnotnull) THEN
        ALTER TABLE "public"."user_preference" ALTER COLUMN "value" DROP NOT NULL;
    END IF;
END
$decant$;

-- init statement 24
DO $decant$
DECLARE stale text;
BEGIN
    FOR stale IN SELECT conname FROM pg_constraint WHERE conrelid = '"public"."user_preference"'::regclass AND contype IN ('c', 'f') AND left(conname, 7) = 'decant_' AND conname <> ALL (ARRAY[]::text[]) LOOP
        EXECUTE format('ALTER TABLE "public"."user_preference" DROP CONSTRAINT %I', stale);
    END LOOP;
END
$decant$;

-- init statement 25
DO $decant$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_selected_bot"'::regclass AND a.attname = 'bot_id' AND NOT a.attnotnull) THEN
        ALTER TABLE "public"."user_selected_bot" ALTER COLUMN "bot_id" SET NOT NULL;
    END IF;
END
$decant$;

-- init statement 26
DO $decant$
DECLARE stale text;
BEGIN
    FOR stale IN SELECT conname FROM pg_constraint WHERE conrelid = '"public"."user_selected_bot"'::regclass AND contype IN ('c', 'f') AND left(conname, 7) = 'decant_' AND conname <> ALL (ARRAY[]::text[]) LOOP
        EXECUTE format('ALTER TABLE "public"."user_selected_bot" DROP CONSTRAINT %I', stale);
    END LOOP;
END
$decant$;

-- init statement 27
DO $decant$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = '"public"."user_statistic"'::regclass AND a.attname = 'value' AND NOT a.attnotnull) THEN
        ALTER TABLE "public"."user_statistic" ALTER COLUMN "value" SET NOT NULL;
    END IF;
END
$decant$;

-- init statement 28
DO $decant$
DECLARE stale text;
BEGIN
    FOR stale IN SELECT conname FROM pg_constraint WHERE conrelid = '"public"."user_statistic"'::regclass AND contype IN ('c', 'f') AND left(conname, 7) = 'decant_' AND conname <> ALL (ARRAY['decant_e32407c9_mode', 'decant_44da6d5c_statistic_id', 'decant_3e91f378_value']::text[]) LOOP
        EXECUTE format('ALTER TABLE "public"."user_statistic" DROP CONSTRAINT %I', stale);
    END LOOP;
END
$decant$;

-- init statement 29
DO $decant$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '"public"."user_statistic"'::regclass AND conname = 'decant_e32407c9_mode') THEN
        ALTER TABLE "public"."user_statistic" ADD CONSTRAINT "decant_e32407c9_mode" CHECK (char_length("mode") <= 64) NOT VALID;
    END IF;
END
$decant$;

-- init statement 30
ALTER TABLE "public"."user_statistic" VALIDATE CONSTRAINT "decant_e32407c9_mode";

-- init statement 31
DO $decant$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '"public"."user_statistic"'::regclass AND conname = 'decant_44da6d5c_statistic_id') THEN
        ALTER TABLE "public"."user_statistic" ADD CONSTRAINT "decant_44da6d5c_statistic_id" CHECK (char_length("statistic_id") <= 64) NOT VALID;
    END IF;
END
$decant$;

-- init statement 32
ALTER TABLE "public"."user_statistic" VALIDATE CONSTRAINT "decant_44da6d5c_statistic_id";

-- init statement 33
DO $decant$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '"public"."user_statistic"'::regclass AND conname = 'decant_3e91f378_value') THEN
        ALTER TABLE "public"."user_statistic" ADD CONSTRAINT "decant_3e91f378_value" CHECK ("value" >= '0'::numeric) NOT VALID;
    END IF;
END
$decant$;

-- init statement 34
ALTER TABLE "public"."user_statistic" VALIDATE CONSTRAINT "decant_3e91f378_value";

-- init statement 35
CREATE OR REPLACE FUNCTION decant.forget_deleted_users() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$
DECLARE gone bigint[];
BEGIN
    gone := ARRAY(SELECT g."id"::bigint FROM decant_gone AS g);
    IF cardinality(gone) = 0 THEN
        RETURN NULL;
    END IF;
    DELETE FROM "public"."user_achievement" AS x WHERE x."user_id" = ANY (gone);
    DELETE FROM "public"."user_bot" AS x WHERE x."user_id" = ANY (gone);
    DELETE FROM "public"."user_config" AS x WHERE x."user_id" = ANY (gone);
    DELETE FROM "public"."user_preference" AS x WHERE x."user_id" = ANY (gone);
    DELETE FROM "public"."user_selected_bot" AS x WHERE x."user_id" = ANY (gone);
    DELETE FROM "public"."user_statistic" AS x WHERE x."user_id" = ANY (gone);
    DELETE FROM decant.user_state AS x WHERE x.user_id = ANY (gone);
    RETURN NULL;
END
$$;

-- init statement 36
CREATE OR REPLACE FUNCTION decant.forget_deleted_user() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$
BEGIN
    DELETE FROM "public"."user_achievement" AS x WHERE x."user_id" = OLD."id"::bigint;
    DELETE FROM "public"."user_bot" AS x WHERE x."user_id" = OLD."id"::bigint;
    DELETE FROM "public"."user_config" AS x WHERE x."user_id" = OLD."id"::bigint;
    DELETE FROM "public"."user_preference" AS x WHERE x."user_id" = OLD."id"::bigint;
    DELETE FROM "public"."user_selected_bot" AS x WHERE x."user_id" = OLD."id"::bigint;
    DELETE FROM "public"."user_statistic" AS x WHERE x."user_id" = OLD."id"::bigint;
    DELETE FROM decant.user_state AS x WHERE x.user_id = OLD."id"::bigint;
    RETURN NULL;
END
$$;

-- init statement 37
DO $decant$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '"public"."user"'::regclass AND tgname = 'decant_forget_deleted_users') THEN
        IF (SELECT c.relkind FROM pg_class AS c WHERE c.oid = '"public"."user"'::regclass) = 'p' THEN
            CREATE TRIGGER decant_forget_deleted_users AFTER DELETE ON "public"."user" FOR EACH ROW EXECUTE FUNCTION decant.forget_deleted_user();
        ELSE
            CREATE TRIGGER decant_forget_deleted_users AFTER DELETE ON "public"."user" REFERENCING OLD TABLE AS decant_gone FOR EACH STATEMENT EXECUTE FUNCTION decant.forget_deleted_users();
        END IF;
    END IF;
END
$decant$;

-- init statement 38
CREATE OR REPLACE FUNCTION decant."rows_b13d81d3_user"(bigint) RETURNS TABLE (t0_n bigint, t0_a0 text[], t0_a1 jsonb[], t0_a2 integer[], t0_a3 timestamp with time zone[], t1_n bigint, t1_a0 text[], t1_a1 jsonb[], t1_a2 smallint[], t1_a3 boolean[], t2_n bigint, t2_a0 jsonb[], t2_a1 smallint[], t2_a2 text[], t3_n bigint, t3_a0 text[], t3_a1 jsonb[], t4_n bigint, t4_a0 text[], t4_a1 smallint[], t5_n bigint, t5_a0 text[], t5_a1 text[], t5_a2 text[])
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp STABLE AS
$$
#variable_conflict use_column
BEGIN
    RETURN QUERY SELECT t0.n, t0.a0, t0.a1, t0.a2, t0.a3, t1.n, t1.a0, t1.a1, t1.a2, t1.a3, t2.n, t2.a0, t2.a1, t2.a2, t3.n, t3.a0, t3.a1, t4.n, t4.a0, t4.a1, t5.n, t5.a0, t5.a1, t5.a2 FROM (SELECT count(*) AS n, array_agg(x."achievement_id") AS a0, array_agg(x."extra") AS a1, array_agg(x."progress") AS a2, array_agg(x."unlocked_at") AS a3 FROM "public"."user_achievement" AS x WHERE x."user_id" = $1) AS t0 CROSS JOIN (SELECT count(*) AS n, array_agg(x."bot_id") AS a0, array_agg(x."extra") AS a1, array_agg(x."level") AS a2, array_agg(x."unlocked") AS a3 FROM "public"."user_bot" AS x WHERE x."user_id" = $1) AS t1 CROSS JOIN (SELECT count(*) AS n, array_agg(x."extra") AS a0, array_agg(x."mans") AS a1, array_agg(x."mode") AS a2 FROM "public"."user_config" AS x WHERE x."user_id" = $1) AS t2 CROSS JOIN (SELECT count(*) AS n, array_agg(x."key") AS a0, array_agg(x."value") AS a1 FROM "public"."user_preference" AS x WHERE x."user_id" = $1) AS t3 CROSS JOIN (SELECT count(*) AS n, array_agg(x."bot_id") AS a0, array_agg(x."position") AS a1 FROM "public"."user_selected_bot" AS x WHERE x."user_id" = $1) AS t4 CROSS JOIN (SELECT count(*) AS n, array_agg(x."mode") AS a0, array_agg(x."statistic_id") AS a1, array_agg(x."value"::text) AS a2 FROM "public"."user_statistic" AS x WHERE x."user_id" = $1) AS t5;
END
$$;

-- init statement 39
DO $decant$
DECLARE f regprocedure; recorded text;
BEGIN
    IF to_regclass('decant.control') IS NOT NULL THEN
        SELECT c.spec_fingerprint INTO recorded FROM decant.control AS c LIMIT 1;
    END IF;
    IF recorded IS NOT DISTINCT FROM '12efabcfbeadb66eba4104d233690750' THEN
        RETURN;
    END IF;
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc AS p WHERE p.pronamespace = 'decant'::regnamespace AND p.proname ~ '^rows_[0-9a-f]{8}_' AND p.oid IS DISTINCT FROM to_regprocedure('decant."rows_b13d81d3_user"(bigint)') LOOP
        EXECUTE format('DROP FUNCTION %s', f);
    END LOOP;
END
$decant$;

-- init statement 40
CREATE OR REPLACE FUNCTION decant.iso_timestamptz_as(t text, form text) RETURNS timestamptz
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS
$$
DECLARE ts timestamptz;
BEGIN
    IF t !~ form THEN
        RETURN NULL;
    END IF;
    -- every form starts YYYY-MM-DDTHH:MI:SS: fields out of range are
    -- NULL here, so that the cast never raises
    IF decant.iso_date(left(t, 10)) IS NULL OR substr(t, 12, 2)::int > 23
       OR substr(t, 15, 2)::int > 59 OR substr(t, 18, 2)::int > 59 THEN
        RETURN NULL;
    END IF;
    ts := t::timestamptz;
    IF to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') <> left(t, 19) THEN
        RETURN NULL;
    END IF;
    RETURN ts;
END
$$;
CREATE OR REPLACE FUNCTION decant.iso_timestamptz(t text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT decant.iso_timestamptz_as(t, '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,5}[1-9])?Z$') $$;
CREATE OR REPLACE FUNCTION decant.iso_ms_timestamptz(t text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT decant.iso_timestamptz_as(t, '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$') $$;
CREATE OR REPLACE FUNCTION decant.iso_date(t text) RETURNS date
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS
$$
DECLARE d date; y int; m int; day int; last int;
BEGIN
    IF t !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        RETURN NULL;
    END IF;
    -- a day that does not exist is NULL here, so that the cast never raises
    -- (the Gregorian calendar, which PostgreSQL uses for every year)
    y := substr(t, 1, 4)::int;
    m := substr(t, 6, 2)::int;
    day := substr(t, 9, 2)::int;
    last := CASE
        WHEN m = 2 AND (y % 4 = 0 AND y % 100 <> 0 OR y % 400 = 0) THEN 29
        WHEN m = 2 THEN 28
        WHEN m IN (4, 6, 9, 11) THEN 30
        ELSE 31 END;
    IF y < 1 OR m < 1 OR m > 12 OR day < 1 OR day > last THEN
        RETURN NULL;
    END IF;
    d := t::date;
    IF to_char(d, 'YYYY-MM-DD') <> t THEN
        RETURN NULL;
    END IF;
    RETURN d;
END
$$;
CREATE OR REPLACE FUNCTION decant.exact_float8(n numeric) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET extra_float_digits = 1 AS
$$ SELECT (n = 0 OR abs(n) BETWEEN 4.9406564584124654e-324 AND 1.7976931348623157e308)
          AND (n::float8)::text::numeric = n $$;
CREATE OR REPLACE FUNCTION decant.strip(v jsonb, path text[]) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
-- an object rule's nested key path taken out of its object: the value at
-- the path goes unless it is null; an object this empties goes too (the
-- rows make it again), one that was empty stays
DECLARE below jsonb;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) <> 'object' OR NOT v ? path[1] THEN
        RETURN v;
    END IF;
    IF cardinality(path) = 1 THEN
        IF jsonb_typeof(v -> path[1]) = 'null' THEN
            RETURN v;
        END IF;
        RETURN v - path[1];
    END IF;
    below := decant.strip(v -> path[1], path[2:]);
    IF below = '{}'::jsonb AND v -> path[1] <> '{}'::jsonb THEN
        RETURN v - path[1];
    END IF;
    RETURN jsonb_set(v, path[1:1], below);
END
$$;

-- init statement 41
CREATE OR REPLACE FUNCTION "public"."user_decant_blob_fails"(blob jsonb) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET plan_cache_mode = force_generic_plan AS
$$
DECLARE
    decant_blob jsonb := CASE WHEN jsonb_typeof(blob) = 'object' THEN blob || '{}'::jsonb ELSE blob END;
BEGIN
    RETURN decant_blob IS NULL
    OR coalesce(((jsonb_typeof(decant_blob) <> 'object')), false)
    OR coalesce((jsonb_typeof(decant_blob) = 'object' AND (decant_blob -> 'marriage') IS NOT NULL AND (jsonb_typeof((decant_blob -> 'marriage')) <> 'object')), false)
    OR coalesce((jsonb_typeof(decant_blob) = 'object' AND (decant_blob -> 'marriage') IS NOT NULL AND jsonb_typeof((decant_blob -> 'marriage')) = 'object' AND ((decant_blob -> 'marriage') -> 'stats') IS NOT NULL AND (jsonb_typeof(((decant_blob -> 'marriage') -> 'stats')) <> 'object')), false)
    OR EXISTS (SELECT 1 FROM jsonb_each(CASE WHEN jsonb_typeof(((decant_blob -> 'marriage') -> 'stats')) = 'object' THEN ((decant_blob -> 'marriage') -> 'stats') END) AS fe2(k, v) WHERE jsonb_typeof(decant_blob) = 'object' AND (decant_blob -> 'marriage') IS NOT NULL AND jsonb_typeof((decant_blob -> 'marriage')) = 'object' AND ((decant_blob -> 'marriage') -> 'stats') IS NOT NULL AND fe2.k NOT IN ('lastPlayed') AND (jsonb_typeof(fe2.v) <> 'object'))
    OR coalesce((jsonb_typeof(decant_blob) = 'object' AND (decant_blob -> 'marriage') IS NOT NULL AND jsonb_typeof((decant_blob -> 'marriage')) = 'object' AND ((decant_blob -> 'marriage') -> 'achievements') IS NOT NULL AND (jsonb_typeof(((decant_blob -> 'marriage') -> 'achievements')) <> 'object')), false)
    OR EXISTS (SELECT 1 FROM jsonb_each(CASE WHEN jsonb_typeof(((decant_blob -> 'marriage') -> 'stats')) = 'object' THEN ((decant_blob -> 'marriage') -> 'stats') END) AS fe2(k, v) CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(fe2.v) = 'object' THEN fe2.v END) AS fe3(k, v) WHERE jsonb_typeof(decant_blob) = 'object' AND (decant_blob -> 'marriage') IS NOT NULL AND jsonb_typeof((decant_blob -> 'marriage')) = 'object' AND ((decant_blob -> 'marriage') -> 'stats') IS NOT NULL AND fe2.k NOT IN ('lastPlayed') AND (NOT (coalesce(true AND char_length(fe2.k) <= 64, false) AND coalesce(true AND char_length(fe3.k) <= 64, false) AND coalesce(24 + (octet_length(fe2.k) + 7) / 4 * 4 + (octet_length(fe3.k) + 7) / 4 * 4 <= 2704, false) AND coalesce(CASE WHEN fe3.v IS NULL OR jsonb_typeof(fe3.v) = 'null' THEN false ELSE (jsonb_typeof(fe3.v) = 'number' AND CASE WHEN jsonb_typeof(fe3.v) = 'number' THEN (fe3.v)::numeric >= '0' ELSE true END) END, false) AND coalesce(NOT (coalesce((fe2.k) = ('global'::text), false) AND coalesce((fe3.k) = ('xp'::text), false)), false) AND coalesce(NOT (coalesce((fe2.k) = ('global'::text), false) AND coalesce((fe3.k) = ('lastPlayed'::text), false)), false)) OR (false)))
    OR coalesce((jsonb_typeof(decant_blob) = 'object' AND (decant_blob -> 'xp') IS NOT NULL AND (NOT (coalesce(CASE WHEN (decant_blob -> 'xp') IS NULL OR jsonb_typeof((decant_blob -> 'xp')) = 'null' THEN false ELSE (jsonb_typeof((decant_blob -> 'xp')) = 'number' AND CASE WHEN jsonb_typeof((decant_blob -> 'xp')) = 'number' THEN ((decant_blob -> 'xp'))::numeric >= '0' ELSE true END) END, false)) OR (false))), false)
    OR coalesce((jsonb_typeof(decant_blob) = 'object' AND (decant_blob -> 'marriage') IS NOT NULL AND jsonb_typeof((decant_blob -> 'marriage')) = 'object' AND ((decant_blob -> 'marriage') -> 'stats') IS NOT NULL AND jsonb_typeof(((decant_blob -> 'marriage') -> 'stats')) = 'object' AND (((decant_blob -> 'marriage') -> 'stats') -> 'lastPlayed') IS NOT NULL AND (NOT (coalesce(CASE WHEN (((decant_blob -> 'marriage') -> 'stats') -> 'lastPlayed') IS NULL OR jsonb_typeof((((decant_blob -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'null' THEN false ELSE (jsonb_typeof((((decant_blob -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'number' AND CASE WHEN jsonb_typeof((((decant_blob -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'number' THEN ((((decant_blob -> 'marriage') -> 'stats') -> 'lastPlayed'))::numeric >= '0' ELSE true END) END, false) AND coalesce(NOT (coalesce(('global'::text) = ('global'::text), false) AND coalesce(('lastPlayed'::text) = ('xp'::text), false)), false)) OR (false))), false)
    OR EXISTS (SELECT 1 FROM jsonb_each(CASE WHEN jsonb_typeof(((decant_blob -> 'marriage') -> 'achievements')) = 'object' THEN ((decant_blob -> 'marriage') -> 'achievements') END) AS fe2(k, v) WHERE jsonb_typeof(decant_blob) = 'object' AND (decant_blob -> 'marriage') IS NOT NULL AND jsonb_typeof((decant_blob -> 'marriage')) = 'object' AND ((decant_blob -> 'marriage') -> 'achievements') IS NOT NULL AND (NOT (coalesce(true, false) AND coalesce(24 + (octet_length(fe2.k) + 7) / 4 * 4 <= 2704, false) AND coalesce(jsonb_typeof(fe2.v) = 'object', false)) OR (false OR (((fe2.v -> 'progress') IS NOT NULL AND jsonb_typeof((fe2.v -> 'progress')) <> 'null') AND NOT (CASE WHEN (fe2.v -> 'progress') IS NULL OR jsonb_typeof((fe2.v -> 'progress')) = 'null' THEN true ELSE ((jsonb_typeof((fe2.v -> 'progress')) = 'number' AND CASE WHEN jsonb_typeof((fe2.v -> 'progress')) = 'number' THEN ((fe2.v -> 'progress'))::numeric = trunc(((fe2.v -> 'progress'))::numeric) AND ((fe2.v -> 'progress'))::numeric BETWEEN -2147483648 AND 2147483647 END) AND CASE WHEN jsonb_typeof((fe2.v -> 'progress')) = 'number' THEN ((fe2.v -> 'progress'))::numeric >= '0' ELSE true END) END)) OR (((fe2.v -> 'unlockedAt') IS NOT NULL AND jsonb_typeof((fe2.v -> 'unlockedAt')) <> 'null') AND NOT (CASE WHEN (fe2.v -> 'unlockedAt') IS NULL OR jsonb_typeof((fe2.v -> 'unlockedAt')) = 'null' THEN true ELSE ((jsonb_typeof((fe2.v -> 'unlockedAt')) = 'number' AND CASE WHEN jsonb_typeof((fe2.v -> 'unlockedAt')) = 'number' THEN ((fe2.v -> 'unlockedAt'))::numeric * 1000 = trunc(((fe2.v -> 'unlockedAt'))::numeric * 1000) AND ((fe2.v -> 'unlockedAt'))::numeric * 1000 BETWEEN -62135596800000000 AND 253402300799999999 END)) END)))))
    OR coalesce((jsonb_typeof(decant_blob) = 'object' AND (decant_blob -> 'marriage') IS NOT NULL AND jsonb_typeof((decant_blob -> 'marriage')) = 'object' AND ((decant_blob -> 'marriage') -> 'config') IS NOT NULL AND (NOT (coalesce(jsonb_typeof(((decant_blob -> 'marriage') -> 'config')) = 'object', false)) OR (false OR (((((decant_blob -> 'marriage') -> 'config') -> 'mans') IS NOT NULL AND jsonb_typeof((((decant_blob -> 'marriage') -> 'config') -> 'mans')) <> 'null') AND NOT (CASE WHEN (((decant_blob -> 'marriage') -> 'config') -> 'mans') IS NULL OR jsonb_typeof((((decant_blob -> 'marriage') -> 'config') -> 'mans')) = 'null' THEN true ELSE ((jsonb_typeof((((decant_blob -> 'marriage') -> 'config') -> 'mans')) = 'number' AND CASE WHEN jsonb_typeof((((decant_blob -> 'marriage') -> 'config') -> 'mans')) = 'number' THEN ((((decant_blob -> 'marriage') -> 'config') -> 'mans'))::numeric = trunc(((((decant_blob -> 'marriage') -> 'config') -> 'mans'))::numeric) AND ((((decant_blob -> 'marriage') -> 'config') -> 'mans'))::numeric BETWEEN -32768 AND 32767 END) AND CASE WHEN jsonb_typeof((((decant_blob -> 'marriage') -> 'config') -> 'mans')) = 'number' THEN ((((decant_blob -> 'marriage') -> 'config') -> 'mans'))::numeric >= '0' ELSE true END) END)) OR (((((decant_blob -> 'marriage') -> 'config') -> 'mode') IS NOT NULL AND jsonb_typeof((((decant_blob -> 'marriage') -> 'config') -> 'mode')) <> 'null') AND NOT (CASE WHEN (((decant_blob -> 'marriage') -> 'config') -> 'mode') IS NULL OR jsonb_typeof((((decant_blob -> 'marriage') -> 'config') -> 'mode')) = 'null' THEN true ELSE (jsonb_typeof((((decant_blob -> 'marriage') -> 'config') -> 'mode')) = 'string' AND CASE WHEN jsonb_typeof((((decant_blob -> 'marriage') -> 'config') -> 'mode')) = 'string' THEN ((((decant_blob -> 'marriage') -> 'config') -> 'mode') #>> '{}') IN ('kidnap', 'murder', 'classic') ELSE true END) END))))), false);
END $$;

-- init statement 42
CREATE OR REPLACE VIEW "public"."user_achievement_all" AS
SELECT "user_id", "achievement_id", "extra", "progress", "unlocked_at" FROM "public"."user_achievement"
UNION ALL
SELECT s."id"::bigint AS "user_id", e2.k AS "achievement_id", (SELECT json_object_agg(x.key, x.value)::jsonb FROM jsonb_each(CASE WHEN jsonb_typeof(e2.v) = 'object' THEN e2.v END) AS x WHERE (x.key NOT IN ('progress', 'unlockedAt') OR jsonb_typeof(x.value) = 'null')) AS "extra", CASE WHEN ((e2.v -> 'progress') IS NOT NULL AND jsonb_typeof((e2.v -> 'progress')) <> 'null') AND (CASE WHEN (e2.v -> 'progress') IS NULL OR jsonb_typeof((e2.v -> 'progress')) = 'null' THEN true ELSE ((jsonb_typeof((e2.v -> 'progress')) = 'number' AND CASE WHEN jsonb_typeof((e2.v -> 'progress')) = 'number' THEN ((e2.v -> 'progress'))::numeric = trunc(((e2.v -> 'progress'))::numeric) AND ((e2.v -> 'progress'))::numeric BETWEEN -2147483648 AND 2147483647 END) AND CASE WHEN jsonb_typeof((e2.v -> 'progress')) = 'number' THEN ((e2.v -> 'progress'))::numeric >= '0' ELSE true END) END) THEN CASE WHEN (e2.v -> 'progress') IS NULL OR jsonb_typeof((e2.v -> 'progress')) = 'null' THEN NULL::integer WHEN (jsonb_typeof((e2.v -> 'progress')) = 'number' AND CASE WHEN jsonb_typeof((e2.v -> 'progress')) = 'number' THEN ((e2.v -> 'progress'))::numeric = trunc(((e2.v -> 'progress'))::numeric) AND ((e2.v -> 'progress'))::numeric BETWEEN -2147483648 AND 2147483647 END) THEN ((e2.v -> 'progress'))::numeric::int4 END END AS "progress", CASE WHEN ((e2.v -> 'unlockedAt') IS NOT NULL AND jsonb_typeof((e2.v -> 'unlockedAt')) <> 'null') AND (CASE WHEN (e2.v -> 'unlockedAt') IS NULL OR jsonb_typeof((e2.v -> 'unlockedAt')) = 'null' THEN true ELSE ((jsonb_typeof((e2.v -> 'unlockedAt')) = 'number' AND CASE WHEN jsonb_typeof((e2.v -> 'unlockedAt')) = 'number' THEN ((e2.v -> 'unlockedAt'))::numeric * 1000 = trunc(((e2.v -> 'unlockedAt'))::numeric * 1000) AND ((e2.v -> 'unlockedAt'))::numeric * 1000 BETWEEN -62135596800000000 AND 253402300799999999 END)) END) THEN CASE WHEN (e2.v -> 'unlockedAt') IS NULL OR jsonb_typeof((e2.v -> 'unlockedAt')) = 'null' THEN NULL::timestamp with time zone WHEN (jsonb_typeof((e2.v -> 'unlockedAt')) = 'number' AND CASE WHEN jsonb_typeof((e2.v -> 'unlockedAt')) = 'number' THEN ((e2.v -> 'unlockedAt'))::numeric * 1000 = trunc(((e2.v -> 'unlockedAt'))::numeric * 1000) AND ((e2.v -> 'unlockedAt'))::numeric * 1000 BETWEEN -62135596800000000 AND 253402300799999999 END) THEN (timestamptz '1970-01-01 00:00:00+00' + div(((e2.v -> 'unlockedAt'))::numeric * 1000, 86400000000)::float8 * interval '24 hours' + mod(((e2.v -> 'unlockedAt'))::numeric * 1000, 86400000000)::float8 * interval '1 microsecond') END END AS "unlocked_at" FROM "public"."user" AS s CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(((s."data" -> 'marriage') -> 'achievements')) = 'object' THEN ((s."data" -> 'marriage') -> 'achievements') END) AS e2(k, v) WHERE (SELECT NOT c.finalized FROM decant.control AS c) AND NOT s."migrated" AND NOT "public"."user_decant_blob_fails"(s."data") AND jsonb_typeof(s."data") = 'object' AND (s."data" -> 'marriage') IS NOT NULL AND jsonb_typeof((s."data" -> 'marriage')) = 'object' AND ((s."data" -> 'marriage') -> 'achievements') IS NOT NULL AND coalesce(true, false) AND coalesce(24 + (octet_length(e2.k) + 7) / 4 * 4 <= 2704, false) AND coalesce(jsonb_typeof(e2.v) = 'object', false);

-- init statement 43
CREATE OR REPLACE VIEW "public"."user_bot_all" AS
SELECT "user_id", "bot_id", "extra", "level", "unlocked" FROM "public"."user_bot"
UNION ALL
SELECT s."id"::bigint AS "user_id", e1.k AS "bot_id", (SELECT json_object_agg(x.key, x.value)::jsonb FROM jsonb_each(CASE WHEN jsonb_typeof(e1.v) = 'object' THEN e1.v END) AS x WHERE (x.key NOT IN ('level', 'unlocked') OR jsonb_typeof(x.value) = 'null')) AS "extra", CASE WHEN ((e1.v -> 'level') IS NOT NULL AND jsonb_typeof((e1.v -> 'level')) <> 'null') AND (CASE WHEN (e1.v -> 'level') IS NULL OR jsonb_typeof((e1.v -> 'level')) = 'null' THEN true ELSE ((jsonb_typeof((e1.v -> 'level')) = 'number' AND CASE WHEN jsonb_typeof((e1.v -> 'level')) = 'number' THEN ((e1.v -> 'level'))::numeric = trunc(((e1.v -> 'level'))::numeric) AND ((e1.v -> 'level'))::numeric BETWEEN -32768 AND 32767 END) AND CASE WHEN jsonb_typeof((e1.v -> 'level')) = 'number' THEN ((e1.v -> 'level'))::numeric >= '0' ELSE true END AND CASE WHEN jsonb_typeof((e1.v -> 'level')) = 'number' THEN ((e1.v -> 'level'))::numeric <= '100' ELSE true END) END) THEN CASE WHEN (e1.v -> 'level') IS NULL OR jsonb_typeof((e1.v -> 'level')) = 'null' THEN NULL::smallint WHEN (jsonb_typeof((e1.v -> 'level')) = 'number' AND CASE WHEN jsonb_typeof((e1.v -> 'level')) = 'number' THEN ((e1.v -> 'level'))::numeric = trunc(((e1.v -> 'level'))::numeric) AND ((e1.v -> 'level'))::numeric BETWEEN -32768 AND 32767 END) THEN ((e1.v -> 'level'))::numeric::int2 END END AS "level", CASE WHEN ((e1.v -> 'unlocked') IS NOT NULL AND jsonb_typeof((e1.v -> 'unlocked')) <> 'null') AND (CASE WHEN (e1.v -> 'unlocked') IS NULL OR jsonb_typeof((e1.v -> 'unlocked')) = 'null' THEN true ELSE (jsonb_typeof((e1.v -> 'unlocked')) = 'boolean') END) THEN CASE WHEN (e1.v -> 'unlocked') IS NULL OR jsonb_typeof((e1.v -> 'unlocked')) = 'null' THEN NULL::boolean WHEN jsonb_typeof((e1.v -> 'unlocked')) = 'boolean' THEN ((e1.v -> 'unlocked'))::boolean END END AS "unlocked" FROM "public"."user" AS s CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof((s."data" -> 'bots')) = 'object' THEN (s."data" -> 'bots') END) AS e1(k, v) WHERE (SELECT NOT c.finalized FROM decant.control AS c) AND NOT s."migrated" AND NOT "public"."user_decant_blob_fails"(s."data") AND jsonb_typeof(s."data") = 'object' AND (s."data" -> 'bots') IS NOT NULL AND e1.k NOT IN ('selected') AND coalesce(true, false) AND coalesce(24 + (octet_length(e1.k) + 7) / 4 * 4 <= 2704, false) AND coalesce(jsonb_typeof(e1.v) = 'object', false);

-- init statement 44
CREATE OR REPLACE VIEW "public"."user_config_all" AS
SELECT "user_id", "extra", "mans", "mode" FROM "public"."user_config"
UNION ALL
SELECT s."id"::bigint AS "user_id", (SELECT json_object_agg(x.key, x.value)::jsonb FROM jsonb_each(CASE WHEN jsonb_typeof(((s."data" -> 'marriage') -> 'config')) = 'object' THEN ((s."data" -> 'marriage') -> 'config') END) AS x WHERE (x.key NOT IN ('mans', 'mode') OR jsonb_typeof(x.value) = 'null')) AS "extra", CASE WHEN ((((s."data" -> 'marriage') -> 'config') -> 'mans') IS NOT NULL AND jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mans')) <> 'null') AND (CASE WHEN (((s."data" -> 'marriage') -> 'config') -> 'mans') IS NULL OR jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mans')) = 'null' THEN true ELSE ((jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mans')) = 'number' AND CASE WHEN jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mans')) = 'number' THEN ((((s."data" -> 'marriage') -> 'config') -> 'mans'))::numeric = trunc(((((s."data" -> 'marriage') -> 'config') -> 'mans'))::numeric) AND ((((s."data" -> 'marriage') -> 'config') -> 'mans'))::numeric BETWEEN -32768 AND 32767 END) AND CASE WHEN jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mans')) = 'number' THEN ((((s."data" -> 'marriage') -> 'config') -> 'mans'))::numeric >= '0' ELSE true END) END) THEN CASE WHEN (((s."data" -> 'marriage') -> 'config') -> 'mans') IS NULL OR jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mans')) = 'null' THEN NULL::smallint WHEN (jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mans')) = 'number' AND CASE WHEN jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mans')) = 'number' THEN ((((s."data" -> 'marriage') -> 'config') -> 'mans'))::numeric = trunc(((((s."data" -> 'marriage') -> 'config') -> 'mans'))::numeric) AND ((((s."data" -> 'marriage') -> 'config') -> 'mans'))::numeric BETWEEN -32768 AND 32767 END) THEN ((((s."data" -> 'marriage') -> 'config') -> 'mans'))::numeric::int2 END END AS "mans", CASE WHEN ((((s."data" -> 'marriage') -> 'config') -> 'mode') IS NOT NULL AND jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mode')) <> 'null') AND (CASE WHEN (((s."data" -> 'marriage') -> 'config') -> 'mode') IS NULL OR jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mode')) = 'null' THEN true ELSE (jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mode')) = 'string' AND CASE WHEN jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mode')) = 'string' THEN ((((s."data" -> 'marriage') -> 'config') -> 'mode') #>> '{}') IN ('kidnap', 'murder', 'classic') ELSE true END) END) THEN CASE WHEN (((s."data" -> 'marriage') -> 'config') -> 'mode') IS NULL OR jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mode')) = 'null' THEN NULL::text WHEN jsonb_typeof((((s."data" -> 'marriage') -> 'config') -> 'mode')) = 'string' THEN ((((s."data" -> 'marriage') -> 'config') -> 'mode') #>> '{}') END END AS "mode" FROM "public"."user" AS s  WHERE (SELECT NOT c.finalized FROM decant.control AS c) AND NOT s."migrated" AND NOT "public"."user_decant_blob_fails"(s."data") AND jsonb_typeof(s."data") = 'object' AND (s."data" -> 'marriage') IS NOT NULL AND jsonb_typeof((s."data" -> 'marriage')) = 'object' AND ((s."data" -> 'marriage') -> 'config') IS NOT NULL AND coalesce(jsonb_typeof(((s."data" -> 'marriage') -> 'config')) = 'object', false);

-- init statement 45
CREATE OR REPLACE VIEW "public"."user_preference_all" AS
SELECT "user_id", "key", "value" FROM "public"."user_preference"
UNION ALL
SELECT s."id"::bigint AS "user_id", e1.k AS "key", CASE WHEN e1.v IS NULL OR jsonb_typeof(e1.v) = 'null' THEN NULL::jsonb WHEN true THEN e1.v END AS "value" FROM "public"."user" AS s CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof((s."data" -> 'pref')) = 'object' THEN (s."data" -> 'pref') END) AS e1(k, v) WHERE (SELECT NOT c.finalized FROM decant.control AS c) AND NOT s."migrated" AND NOT "public"."user_decant_blob_fails"(s."data") AND jsonb_typeof(s."data") = 'object' AND (s."data" -> 'pref') IS NOT NULL AND coalesce(true, false) AND coalesce(24 + (octet_length(e1.k) + 7) / 4 * 4 <= 2704, false) AND coalesce(CASE WHEN e1.v IS NULL OR jsonb_typeof(e1.v) = 'null' THEN true ELSE (true) END, false);

-- init statement 46
CREATE OR REPLACE VIEW "public"."user_selected_bot_all" AS
SELECT "user_id", "bot_id", "position" FROM "public"."user_selected_bot"
UNION ALL
SELECT s."id"::bigint AS "user_id", CASE WHEN a.v IS NULL OR jsonb_typeof(a.v) = 'null' THEN NULL::text WHEN jsonb_typeof(a.v) = 'string' THEN (a.v #>> '{}') END AS "bot_id", CASE WHEN to_jsonb((a.n - 1)) IS NULL OR jsonb_typeof(to_jsonb((a.n - 1))) = 'null' THEN NULL::smallint WHEN (jsonb_typeof(to_jsonb((a.n - 1))) = 'number' AND CASE WHEN jsonb_typeof(to_jsonb((a.n - 1))) = 'number' THEN (to_jsonb((a.n - 1)))::numeric = trunc((to_jsonb((a.n - 1)))::numeric) AND (to_jsonb((a.n - 1)))::numeric BETWEEN -32768 AND 32767 END) THEN (to_jsonb((a.n - 1)))::numeric::int2 END AS "position" FROM "public"."user" AS s CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(((s."data" -> 'bots') -> 'selected')) = 'array' THEN ((s."data" -> 'bots') -> 'selected') END) WITH ORDINALITY AS a(v, n) WHERE (SELECT NOT c.finalized FROM decant.control AS c) AND NOT s."migrated" AND NOT "public"."user_decant_blob_fails"(s."data") AND jsonb_typeof(s."data") = 'object' AND (s."data" -> 'bots') IS NOT NULL AND jsonb_typeof((s."data" -> 'bots')) = 'object' AND ((s."data" -> 'bots') -> 'selected') IS NOT NULL AND coalesce(CASE WHEN to_jsonb((a.n - 1)) IS NULL OR jsonb_typeof(to_jsonb((a.n - 1))) = 'null' THEN true ELSE ((jsonb_typeof(to_jsonb((a.n - 1))) = 'number' AND CASE WHEN jsonb_typeof(to_jsonb((a.n - 1))) = 'number' THEN (to_jsonb((a.n - 1)))::numeric = trunc((to_jsonb((a.n - 1)))::numeric) AND (to_jsonb((a.n - 1)))::numeric BETWEEN -32768 AND 32767 END)) END, false) AND coalesce(CASE WHEN a.v IS NULL OR jsonb_typeof(a.v) = 'null' THEN false ELSE (jsonb_typeof(a.v) = 'string') END, false) AND coalesce(CASE WHEN to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s."data" -> 'bots') -> 'selected')) = 'array' THEN ((s."data" -> 'bots') -> 'selected') END) - 1) IS NULL OR jsonb_typeof(to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s."data" -> 'bots') -> 'selected')) = 'array' THEN ((s."data" -> 'bots') -> 'selected') END) - 1)) = 'null' THEN true ELSE ((jsonb_typeof(to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s."data" -> 'bots') -> 'selected')) = 'array' THEN ((s."data" -> 'bots') -> 'selected') END) - 1)) = 'number' AND CASE WHEN jsonb_typeof(to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s."data" -> 'bots') -> 'selected')) = 'array' THEN ((s."data" -> 'bots') -> 'selected') END) - 1)) = 'number' THEN (to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s."data" -> 'bots') -> 'selected')) = 'array' THEN ((s."data" -> 'bots') -> 'selected') END) - 1))::numeric = trunc((to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s."data" -> 'bots') -> 'selected')) = 'array' THEN ((s."data" -> 'bots') -> 'selected') END) - 1))::numeric) AND (to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s."data" -> 'bots') -> 'selected')) = 'array' THEN ((s."data" -> 'bots') -> 'selected') END) - 1))::numeric BETWEEN -32768 AND 32767 END)) END, false);

-- init statement 47
CREATE OR REPLACE VIEW "public"."user_statistic_all" AS
SELECT "user_id", "mode", "statistic_id", "value" FROM "public"."user_statistic"
UNION ALL
SELECT s."id"::bigint AS "user_id", e2.k AS "mode", e3.k AS "statistic_id", CASE WHEN e3.v IS NULL OR jsonb_typeof(e3.v) = 'null' THEN NULL::numeric WHEN jsonb_typeof(e3.v) = 'number' THEN (e3.v)::numeric END AS "value" FROM "public"."user" AS s CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(((s."data" -> 'marriage') -> 'stats')) = 'object' THEN ((s."data" -> 'marriage') -> 'stats') END) AS e2(k, v) CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(e2.v) = 'object' THEN e2.v END) AS e3(k, v) WHERE (SELECT NOT c.finalized FROM decant.control AS c) AND NOT s."migrated" AND NOT "public"."user_decant_blob_fails"(s."data") AND jsonb_typeof(s."data") = 'object' AND (s."data" -> 'marriage') IS NOT NULL AND jsonb_typeof((s."data" -> 'marriage')) = 'object' AND ((s."data" -> 'marriage') -> 'stats') IS NOT NULL AND e2.k NOT IN ('lastPlayed') AND coalesce(true AND char_length(e2.k) <= 64, false) AND coalesce(true AND char_length(e3.k) <= 64, false) AND coalesce(24 + (octet_length(e2.k) + 7) / 4 * 4 + (octet_length(e3.k) + 7) / 4 * 4 <= 2704, false) AND coalesce(CASE WHEN e3.v IS NULL OR jsonb_typeof(e3.v) = 'null' THEN false ELSE (jsonb_typeof(e3.v) = 'number' AND CASE WHEN jsonb_typeof(e3.v) = 'number' THEN (e3.v)::numeric >= '0' ELSE true END) END, false) AND coalesce(NOT (coalesce((e2.k) = ('global'::text), false) AND coalesce((e3.k) = ('xp'::text), false)), false) AND coalesce(NOT (coalesce((e2.k) = ('global'::text), false) AND coalesce((e3.k) = ('lastPlayed'::text), false)), false)
UNION ALL
SELECT s."id"::bigint AS "user_id", 'global'::text AS "mode", 'xp'::text AS "statistic_id", CASE WHEN (s."data" -> 'xp') IS NULL OR jsonb_typeof((s."data" -> 'xp')) = 'null' THEN NULL::numeric WHEN jsonb_typeof((s."data" -> 'xp')) = 'number' THEN ((s."data" -> 'xp'))::numeric END AS "value" FROM "public"."user" AS s  WHERE (SELECT NOT c.finalized FROM decant.control AS c) AND NOT s."migrated" AND NOT "public"."user_decant_blob_fails"(s."data") AND jsonb_typeof(s."data") = 'object' AND (s."data" -> 'xp') IS NOT NULL AND coalesce(CASE WHEN (s."data" -> 'xp') IS NULL OR jsonb_typeof((s."data" -> 'xp')) = 'null' THEN false ELSE (jsonb_typeof((s."data" -> 'xp')) = 'number' AND CASE WHEN jsonb_typeof((s."data" -> 'xp')) = 'number' THEN ((s."data" -> 'xp'))::numeric >= '0' ELSE true END) END, false)
UNION ALL
SELECT s."id"::bigint AS "user_id", 'global'::text AS "mode", 'lastPlayed'::text AS "statistic_id", CASE WHEN (((s."data" -> 'marriage') -> 'stats') -> 'lastPlayed') IS NULL OR jsonb_typeof((((s."data" -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'null' THEN NULL::numeric WHEN jsonb_typeof((((s."data" -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'number' THEN ((((s."data" -> 'marriage') -> 'stats') -> 'lastPlayed'))::numeric END AS "value" FROM "public"."user" AS s  WHERE (SELECT NOT c.finalized FROM decant.control AS c) AND NOT s."migrated" AND NOT "public"."user_decant_blob_fails"(s."data") AND jsonb_typeof(s."data") = 'object' AND (s."data" -> 'marriage') IS NOT NULL AND jsonb_typeof((s."data" -> 'marriage')) = 'object' AND ((s."data" -> 'marriage') -> 'stats') IS NOT NULL AND jsonb_typeof(((s."data" -> 'marriage') -> 'stats')) = 'object' AND (((s."data" -> 'marriage') -> 'stats') -> 'lastPlayed') IS NOT NULL AND coalesce(CASE WHEN (((s."data" -> 'marriage') -> 'stats') -> 'lastPlayed') IS NULL OR jsonb_typeof((((s."data" -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'null' THEN false ELSE (jsonb_typeof((((s."data" -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'number' AND CASE WHEN jsonb_typeof((((s."data" -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'number' THEN ((((s."data" -> 'marriage') -> 'stats') -> 'lastPlayed'))::numeric >= '0' ELSE true END) END, false) AND coalesce(NOT (coalesce(('global'::text) = ('global'::text), false) AND coalesce(('lastPlayed'::text) = ('xp'::text), false)), false);

-- init statement 48
CREATE INDEX CONCURRENTLY IF NOT EXISTS "user_statistic_kidnap_points_rank_idx" ON "public"."user_statistic" ("value" DESC NULLS LAST, "user_id") WHERE "mode" = 'kidnap'::text AND "statistic_id" = 'points'::text;

-- init statement 49
CREATE INDEX CONCURRENTLY IF NOT EXISTS "user_kidnap_points_legacy_rank_idx" ON "public"."user" ((CASE WHEN (((("data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points') IS NULL OR jsonb_typeof((((("data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points')) = 'null' THEN NULL::numeric WHEN jsonb_typeof((((("data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points')) = 'number' THEN ((((("data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points'))::numeric END) DESC NULLS LAST, "id") WHERE NOT "migrated";

-- init statement 50
CREATE OR REPLACE FUNCTION "public"."kidnap_points_top"(n integer) RETURNS TABLE (user_id bigint, value numeric)
    LANGUAGE sql STABLE AS
$$
SELECT u, v FROM (
  (SELECT t."user_id"::bigint AS u, t."value" AS v FROM "public"."user_statistic" AS t WHERE "mode" = 'kidnap'::text AND "statistic_id" = 'points'::text
   ORDER BY t."value" DESC NULLS LAST, t."user_id" LIMIT greatest($1, 0))
  UNION ALL
  (SELECT s."id"::bigint, CASE WHEN ((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points') IS NULL OR jsonb_typeof(((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points')) = 'null' THEN NULL::numeric WHEN jsonb_typeof(((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points')) = 'number' THEN (((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points'))::numeric END FROM "public"."user" AS s
   WHERE (SELECT NOT c.finalized FROM decant.control AS c) AND NOT s."migrated" AND ((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points') IS NOT NULL AND (CASE WHEN ((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points') IS NULL OR jsonb_typeof(((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points')) = 'null' THEN false ELSE (jsonb_typeof(((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points')) = 'number' AND CASE WHEN jsonb_typeof(((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points')) = 'number' THEN (((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points'))::numeric >= '0' ELSE true END) END) AND NOT "public"."user_decant_blob_fails"(s."data")
   ORDER BY CASE WHEN ((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points') IS NULL OR jsonb_typeof(((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points')) = 'null' THEN NULL::numeric WHEN jsonb_typeof(((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points')) = 'number' THEN (((((s."data" -> 'marriage') -> 'stats') -> 'kidnap') -> 'points'))::numeric END DESC NULLS LAST, s."id" LIMIT greatest($1, 0))
) AS x ORDER BY v DESC NULLS LAST, u LIMIT greatest($1, 0)
$$;

-- init statement 51
CREATE INDEX CONCURRENTLY IF NOT EXISTS "user_statistic_xp_rank_idx" ON "public"."user_statistic" ("value" DESC NULLS LAST, "user_id") WHERE "mode" = 'global'::text AND "statistic_id" = 'xp'::text;

-- init statement 52
CREATE INDEX CONCURRENTLY IF NOT EXISTS "user_xp_legacy_rank_idx" ON "public"."user" ((CASE WHEN ("data" -> 'xp') IS NULL OR jsonb_typeof(("data" -> 'xp')) = 'null' THEN NULL::numeric WHEN jsonb_typeof(("data" -> 'xp')) = 'number' THEN (("data" -> 'xp'))::numeric END) DESC NULLS LAST, "id") WHERE NOT "migrated";

-- init statement 53
CREATE OR REPLACE FUNCTION "public"."xp_top"(n integer) RETURNS TABLE (user_id bigint, value numeric)
    LANGUAGE sql STABLE AS
$$
SELECT u, v FROM (
  (SELECT t."user_id"::bigint AS u, t."value" AS v FROM "public"."user_statistic" AS t WHERE "mode" = 'global'::text AND "statistic_id" = 'xp'::text
   ORDER BY t."value" DESC NULLS LAST, t."user_id" LIMIT greatest($1, 0))
  UNION ALL
  (SELECT s."id"::bigint, CASE WHEN (s."data" -> 'xp') IS NULL OR jsonb_typeof((s."data" -> 'xp')) = 'null' THEN NULL::numeric WHEN jsonb_typeof((s."data" -> 'xp')) = 'number' THEN ((s."data" -> 'xp'))::numeric END FROM "public"."user" AS s
   WHERE (SELECT NOT c.finalized FROM decant.control AS c) AND NOT s."migrated" AND (s."data" -> 'xp') IS NOT NULL AND (CASE WHEN (s."data" -> 'xp') IS NULL OR jsonb_typeof((s."data" -> 'xp')) = 'null' THEN false ELSE (jsonb_typeof((s."data" -> 'xp')) = 'number' AND CASE WHEN jsonb_typeof((s."data" -> 'xp')) = 'number' THEN ((s."data" -> 'xp'))::numeric >= '0' ELSE true END) END) AND NOT "public"."user_decant_blob_fails"(s."data")
   ORDER BY CASE WHEN (s."data" -> 'xp') IS NULL OR jsonb_typeof((s."data" -> 'xp')) = 'null' THEN NULL::numeric WHEN jsonb_typeof((s."data" -> 'xp')) = 'number' THEN ((s."data" -> 'xp'))::numeric END DESC NULLS LAST, s."id" LIMIT greatest($1, 0))
) AS x ORDER BY v DESC NULLS LAST, u LIMIT greatest($1, 0)
$$;

-- init statement 54
CREATE OR REPLACE FUNCTION decant.merge_patch(target jsonb, patch jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
DECLARE _gone text[]; _not_put text[]; _merged jsonb;
BEGIN
    IF patch IS NULL OR jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    IF target IS NULL OR jsonb_typeof(target) <> 'object' THEN
        target := '{}';
    END IF;
    -- each object built once, by the binary operators: the target less
    -- the keys the patch removes (a null), then the patch's other
    -- non-object values over it, then each object of the patch merged
    -- into the target's value. (A jsonb_set per key copied the whole
    -- object each time: a patch of 100,000 keys took 9 minutes, the
    -- user's row locked throughout. jsonb_object_agg over both objects'
    -- keys copies every value token by token, and before PostgreSQL 15
    -- scans the rest of the value for each of its strings: a one-counter
    -- patch of a blob holding a 400 kB object took 1.4 s on 13 and 14,
    -- 23 ms on 15, and could not be cancelled; this takes 0.6 ms on 15.)
    SELECT coalesce(array_agg(p.key) FILTER (WHERE jsonb_typeof(p.value) = 'null'), '{}'),
           coalesce(array_agg(p.key) FILTER (WHERE jsonb_typeof(p.value) IN ('null', 'object')), '{}'),
           json_object_agg(p.key, decant.merge_patch(target -> p.key, p.value))
               FILTER (WHERE jsonb_typeof(p.value) = 'object')::jsonb
      INTO _gone, _not_put, _merged
      FROM jsonb_each(patch) AS p;
    RETURN (target - _gone) || (patch - _not_put) || coalesce(_merged, '{}');
END
$$;
CREATE OR REPLACE FUNCTION decant.patch_paths(patch jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$
-- the paths an object merge patch changes: down its objects to each value
-- that replaces or removes (an empty object replaces a non-object)
WITH RECURSIVE w(path, v) AS (
    SELECT jsonb_build_array(e.key), e.value FROM jsonb_each(patch) AS e
    UNION ALL
    SELECT w.path || jsonb_build_array(e.key), e.value
      FROM w, jsonb_each(CASE WHEN jsonb_typeof(w.v) = 'object' THEN w.v END) AS e
)
SELECT coalesce(jsonb_agg(w.path), '[]') FROM w
 WHERE jsonb_typeof(w.v) <> 'object' OR w.v = '{}'
$$;
CREATE OR REPLACE FUNCTION decant.positions(entries jsonb) RETURNS TABLE (i int, v jsonb)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$
-- an array rule's aggregated rows (see decant.fill) as (position, value)
SELECT (x.n - 1)::int, x.v FROM jsonb_array_elements(
    CASE WHEN jsonb_typeof(entries) = 'array' THEN entries END) WITH ORDINALITY AS x(v, n)
UNION ALL
SELECT x.key::int, x.value FROM jsonb_each(
    CASE WHEN jsonb_typeof(entries) = 'object' THEN entries -> 'decant:positions' END) AS x
$$;
CREATE OR REPLACE FUNCTION decant.fill(kept jsonb, entries jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
-- an array rule's rows put into the array the residual kept (for elements
-- the rule refused), each in its element's place: an empty object there
-- (an element claimed whole) takes the row's value, the refused keys of
-- an object element merge with the row's object. `entries`: the rows'
-- values in position order, or {"decant:positions": {"<position>": value}}
-- when some positions have no row. One pass over the array (setting each
-- element in turn copied the whole array each time: 5.6 s for 9,000 rows)
DECLARE bad record; out jsonb;
BEGIN
    SELECT e.i, e.v, kept -> e.i AS slot INTO bad FROM decant.positions(entries) AS e
     WHERE e.i < 0 OR kept -> e.i IS NULL
        OR NOT (kept -> e.i = '{}'::jsonb
                OR (jsonb_typeof(kept -> e.i) = 'object' AND jsonb_typeof(e.v) = 'object'))
     ORDER BY e.i LIMIT 1;
    IF FOUND AND (bad.slot IS NULL OR bad.i < 0) THEN
        RAISE EXCEPTION 'decant: cannot rebuild the blob: a row at position % past the residual''s % elements',
            bad.i, jsonb_array_length(kept) USING ERRCODE = 'data_corrupted';
    ELSIF FOUND THEN
        RAISE EXCEPTION 'decant: cannot rebuild the blob: row and residual collide (the residual holds %, a row %)',
            left(bad.slot::text, 200), left(bad.v::text, 200) USING ERRCODE = 'data_corrupted';
    END IF;
    SELECT json_agg(CASE WHEN e.v IS NULL THEN k.v
                         WHEN k.v = '{}'::jsonb THEN e.v
                         ELSE decant.graft(k.v, e.v) END ORDER BY k.n)::jsonb INTO out
      FROM jsonb_array_elements(kept) WITH ORDINALITY AS k(v, n)
      LEFT JOIN decant.positions(entries) AS e ON e.i = k.n - 1;
    RETURN coalesce(out, kept);
END
$$;
CREATE OR REPLACE FUNCTION decant.deep_merge(a jsonb, b jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
BEGIN
    -- an array rule's rows into the array the residual kept for elements
    -- the rule refused
    IF jsonb_typeof(a) = 'array' AND a <> '[]'::jsonb
       AND (jsonb_typeof(b) = 'array' OR (jsonb_typeof(b) = 'object' AND b ? 'decant:positions')) THEN
        RETURN decant.fill(a, b);
    END IF;
    IF a IS NULL OR b IS NULL OR jsonb_typeof(a) <> 'object' OR jsonb_typeof(b) <> 'object' THEN
        RETURN coalesce(b, a);
    END IF;
    -- no key on both sides with different values: one concatenation
    IF a || b = b || a THEN
        RETURN a || b;
    END IF;
    RETURN a || coalesce((
        SELECT json_object_agg(e.key, CASE WHEN a ? e.key THEN decant.deep_merge(a -> e.key, e.value)
                                           ELSE e.value END)::jsonb
          FROM jsonb_each(b) AS e), '{}');
END
$$;
CREATE OR REPLACE FUNCTION decant.cat(a jsonb, b jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT coalesce(a || b, a, b) $$;
CREATE OR REPLACE FUNCTION decant.graft(root jsonb, entries jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
-- the rows' object `entries` merged into the residual `root` at every
-- depth (the residual holds the keys a `keep` rule left behind); a row's
-- value that is not an object meeting one in the residual is a collision
BEGIN
    IF entries IS NULL THEN
        RETURN root;
    END IF;
    IF root IS NULL THEN
        RETURN entries;
    END IF;
    -- an array rule's rows into the array the residual kept for elements
    -- the rule refused
    IF jsonb_typeof(root) = 'array' AND root <> '[]'::jsonb
       AND (jsonb_typeof(entries) = 'array' OR (jsonb_typeof(entries) = 'object' AND entries ? 'decant:positions')) THEN
        RETURN decant.fill(root, entries);
    END IF;
    IF jsonb_typeof(entries) <> 'object' THEN
        -- an array claimed whole, where the residual left an empty one
        IF root = '[]'::jsonb AND jsonb_typeof(entries) = 'array' THEN
            RETURN entries;
        END IF;
        -- a value both in the rows and in the residual (a write that
        -- bypassed decant put it back into the blob column): as the Rust
        -- layer, no answer rather than one of the two
        RAISE EXCEPTION 'decant: cannot rebuild the blob: row and residual collide (the residual holds %, a row %)',
            left(root::text, 200), left(entries::text, 200)
            USING ERRCODE = 'data_corrupted';
    END IF;
    IF jsonb_typeof(root) <> 'object' THEN
        RAISE EXCEPTION 'decant: cannot rebuild the blob: a row lands inside a non-object (%)', root
            USING ERRCODE = 'data_corrupted';
    END IF;
    -- no key on both sides with different values: one concatenation
    IF root || entries = entries || root THEN
        RETURN root || entries;
    END IF;
    RETURN root || (
        SELECT json_object_agg(e.key, CASE WHEN root ? e.key THEN decant.graft(root -> e.key, e.value)
                                           ELSE e.value END)::jsonb
          FROM jsonb_each(entries) AS e);
END
$$;
CREATE OR REPLACE FUNCTION decant.put_all(root jsonb, items jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
-- puts rows' values (`items`: [[path, value], ...]) each at its path of
-- keys (strings) and positions (numbers), making the objects and arrays
-- on the way: a position past the end of an array grows it with nulls
-- that other rows fill; an empty container the residual left for an
-- element claimed whole is filled; an object meeting what the residual
-- kept there merges with it. Level by level, each container built once
-- (putting one row at a time copied the whole blob each time: 29 s for a
-- user with 5,000 rows through an array)
DECLARE v jsonb; kinds text[]; out jsonb;
BEGIN
    FOR v IN SELECT x -> 1 FROM jsonb_array_elements(items) AS x WHERE x -> 0 = '[]'::jsonb LOOP
        IF root IS NULL OR jsonb_typeof(root) = 'null' OR root = '[]'::jsonb THEN
            root := v;
        ELSE
            root := decant.deep_merge(root, v);
        END IF;
    END LOOP;
    SELECT array_agg(DISTINCT jsonb_typeof(x -> 0 -> 0)) INTO kinds
      FROM jsonb_array_elements(items) AS x WHERE x -> 0 <> '[]'::jsonb;
    IF kinds IS NULL THEN
        RETURN root;
    END IF;
    IF root IS NULL OR jsonb_typeof(root) = 'null' THEN
        root := CASE WHEN kinds = ARRAY['number'] THEN '[]'::jsonb ELSE '{}'::jsonb END;
    END IF;
    IF kinds = ARRAY['number'] AND jsonb_typeof(root) = 'array' THEN
        IF EXISTS (SELECT FROM jsonb_array_elements(items) AS x WHERE (x -> 0 ->> 0)::int < 0) THEN
            RAISE EXCEPTION 'decant: cannot rebuild the blob: a row at a negative position'
                USING ERRCODE = 'data_corrupted';
        END IF;
        -- the array: its elements as the residual kept them, those rows
        -- reach made again; one element a row ends at is its value
        WITH g AS (
            SELECT (x -> 0 ->> 0)::int AS i,
                   count(*) = 1 AND bool_and((x -> 0) - 0 = '[]'::jsonb) AS leaf,
                   (array_agg(x -> 1))[1] AS v,
                   json_agg(json_build_array((x -> 0) - 0, x -> 1))::jsonb AS sub
              FROM jsonb_array_elements(items) AS x
             WHERE x -> 0 <> '[]'::jsonb
             GROUP BY 1
        )
        SELECT json_agg(CASE WHEN g.i IS NULL THEN coalesce(root -> s.i, 'null'::jsonb)
                             WHEN NOT g.leaf THEN decant.put_all(root -> s.i, g.sub)
                             WHEN root -> s.i IS NULL OR jsonb_typeof(root -> s.i) = 'null'
                                  OR root -> s.i = '[]'::jsonb THEN g.v
                             ELSE decant.deep_merge(root -> s.i, g.v) END ORDER BY s.i)::jsonb
          INTO out
          FROM generate_series(0, greatest(jsonb_array_length(root) - 1, (SELECT max(g.i) FROM g))) AS s(i)
          LEFT JOIN g ON g.i = s.i;
        RETURN coalesce(out, root);
    END IF;
    IF kinds = ARRAY['string'] AND jsonb_typeof(root) = 'object' THEN
        SELECT root || json_object_agg(g.k, CASE
                   WHEN NOT g.leaf THEN decant.put_all(root -> g.k, g.sub)
                   WHEN root -> g.k IS NULL OR jsonb_typeof(root -> g.k) = 'null'
                        OR root -> g.k = '[]'::jsonb THEN g.v
                   ELSE decant.deep_merge(root -> g.k, g.v) END)::jsonb
          INTO out
          FROM (SELECT x -> 0 ->> 0 AS k,
                       count(*) = 1 AND bool_and((x -> 0) - 0 = '[]'::jsonb) AS leaf,
                       (array_agg(x -> 1))[1] AS v,
                       json_agg(json_build_array((x -> 0) - 0, x -> 1))::jsonb AS sub
                  FROM jsonb_array_elements(items) AS x
                 WHERE x -> 0 <> '[]'::jsonb
                 GROUP BY 1) AS g;
        RETURN out;
    END IF;
    RAISE EXCEPTION 'decant: cannot rebuild the blob: a row lands inside a non-% (%)',
        CASE WHEN 'number' = ANY(kinds) THEN 'array' ELSE 'object' END, root
        USING ERRCODE = 'data_corrupted';
END
$$;
CREATE OR REPLACE FUNCTION decant.epoch_ms(t timestamptz) RETURNS numeric
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT trim_scale(((t AT TIME ZONE 'UTC')::date - date '1970-01-01')::numeric * 86400000
          + round(extract(epoch FROM (t AT TIME ZONE 'UTC')::time)::numeric * 1000000) / 1000) $$;
CREATE OR REPLACE FUNCTION decant.iso_text(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
          || CASE WHEN to_char(t AT TIME ZONE 'UTC', 'US') = '000000' THEN ''
                  ELSE '.' || rtrim(to_char(t AT TIME ZONE 'UTC', 'US'), '0') END
          || 'Z' $$;

-- init statement 55
CREATE OR REPLACE FUNCTION decant."user_rows_user_achievement"(bigint, jsonb) RETURNS TABLE ("user_id" bigint, "achievement_id" text, "extra" jsonb, "progress" integer, "unlocked_at" timestamp with time zone)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp IMMUTABLE PARALLEL SAFE ROWS 50 SET extra_float_digits = 1 SET jit = off AS
$$
#variable_conflict use_column
BEGIN
    RETURN QUERY
SELECT s.i AS "user_id", e2.k AS "achievement_id", (SELECT json_object_agg(x.key, x.value)::jsonb FROM jsonb_each(CASE WHEN jsonb_typeof(e2.v) = 'object' THEN e2.v END) AS x WHERE (x.key NOT IN ('progress', 'unlockedAt') OR jsonb_typeof(x.value) = 'null')) AS "extra", CASE WHEN ((e2.v -> 'progress') IS NOT NULL AND jsonb_typeof((e2.v -> 'progress')) <> 'null') AND (CASE WHEN (e2.v -> 'progress') IS NULL OR jsonb_typeof((e2.v -> 'progress')) = 'null' THEN true ELSE ((jsonb_typeof((e2.v -> 'progress')) = 'number' AND CASE WHEN jsonb_typeof((e2.v -> 'progress')) = 'number' THEN ((e2.v -> 'progress'))::numeric = trunc(((e2.v -> 'progress'))::numeric) AND ((e2.v -> 'progress'))::numeric BETWEEN -2147483648 AND 2147483647 END) AND CASE WHEN jsonb_typeof((e2.v -> 'progress')) = 'number' THEN ((e2.v -> 'progress'))::numeric >= '0' ELSE true END) END) THEN CASE WHEN (e2.v -> 'progress') IS NULL OR jsonb_typeof((e2.v -> 'progress')) = 'null' THEN NULL::integer WHEN (jsonb_typeof((e2.v -> 'progress')) = 'number' AND CASE WHEN jsonb_typeof((e2.v -> 'progress')) = 'number' THEN ((e2.v -> 'progress'))::numeric = trunc(((e2.v -> 'progress'))::numeric) AND ((e2.v -> 'progress'))::numeric BETWEEN -2147483648 AND 2147483647 END) THEN ((e2.v -> 'progress'))::numeric::int4 END END AS "progress", CASE WHEN ((e2.v -> 'unlockedAt') IS NOT NULL AND jsonb_typeof((e2.v -> 'unlockedAt')) <> 'null') AND (CASE WHEN (e2.v -> 'unlockedAt') IS NULL OR jsonb_typeof((e2.v -> 'unlockedAt')) = 'null' THEN true ELSE ((jsonb_typeof((e2.v -> 'unlockedAt')) = 'number' AND CASE WHEN jsonb_typeof((e2.v -> 'unlockedAt')) = 'number' THEN ((e2.v -> 'unlockedAt'))::numeric * 1000 = trunc(((e2.v -> 'unlockedAt'))::numeric * 1000) AND ((e2.v -> 'unlockedAt'))::numeric * 1000 BETWEEN -62135596800000000 AND 253402300799999999 END)) END) THEN CASE WHEN (e2.v -> 'unlockedAt') IS NULL OR jsonb_typeof((e2.v -> 'unlockedAt')) = 'null' THEN NULL::timestamp with time zone WHEN (jsonb_typeof((e2.v -> 'unlockedAt')) = 'number' AND CASE WHEN jsonb_typeof((e2.v -> 'unlockedAt')) = 'number' THEN ((e2.v -> 'unlockedAt'))::numeric * 1000 = trunc(((e2.v -> 'unlockedAt'))::numeric * 1000) AND ((e2.v -> 'unlockedAt'))::numeric * 1000 BETWEEN -62135596800000000 AND 253402300799999999 END) THEN (timestamptz '1970-01-01 00:00:00+00' + div(((e2.v -> 'unlockedAt'))::numeric * 1000, 86400000000)::float8 * interval '24 hours' + mod(((e2.v -> 'unlockedAt'))::numeric * 1000, 86400000000)::float8 * interval '1 microsecond') END END AS "unlocked_at" FROM (SELECT $1 AS i, $2 AS b) AS s CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(((s.b -> 'marriage') -> 'achievements')) = 'object' THEN ((s.b -> 'marriage') -> 'achievements') END) AS e2(k, v) WHERE jsonb_typeof(s.b) = 'object' AND (s.b -> 'marriage') IS NOT NULL AND jsonb_typeof((s.b -> 'marriage')) = 'object' AND ((s.b -> 'marriage') -> 'achievements') IS NOT NULL AND coalesce(true, false) AND coalesce(24 + (octet_length(e2.k) + 7) / 4 * 4 <= 2704, false) AND coalesce(jsonb_typeof(e2.v) = 'object', false);
END
$$;

-- init statement 56
CREATE OR REPLACE FUNCTION decant."user_rows_user_bot"(bigint, jsonb) RETURNS TABLE ("user_id" bigint, "bot_id" text, "extra" jsonb, "level" smallint, "unlocked" boolean)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp IMMUTABLE PARALLEL SAFE ROWS 50 SET extra_float_digits = 1 SET jit = off AS
$$
#variable_conflict use_column
BEGIN
    RETURN QUERY
SELECT s.i AS "user_id", e1.k AS "bot_id", (SELECT json_object_agg(x.key, x.value)::jsonb FROM jsonb_each(CASE WHEN jsonb_typeof(e1.v) = 'object' THEN e1.v END) AS x WHERE (x.key NOT IN ('level', 'unlocked') OR jsonb_typeof(x.value) = 'null')) AS "extra", CASE WHEN ((e1.v -> 'level') IS NOT NULL AND jsonb_typeof((e1.v -> 'level')) <> 'null') AND (CASE WHEN (e1.v -> 'level') IS NULL OR jsonb_typeof((e1.v -> 'level')) = 'null' THEN true ELSE ((jsonb_typeof((e1.v -> 'level')) = 'number' AND CASE WHEN jsonb_typeof((e1.v -> 'level')) = 'number' THEN ((e1.v -> 'level'))::numeric = trunc(((e1.v -> 'level'))::numeric) AND ((e1.v -> 'level'))::numeric BETWEEN -32768 AND 32767 END) AND CASE WHEN jsonb_typeof((e1.v -> 'level')) = 'number' THEN ((e1.v -> 'level'))::numeric >= '0' ELSE true END AND CASE WHEN jsonb_typeof((e1.v -> 'level')) = 'number' THEN ((e1.v -> 'level'))::numeric <= '100' ELSE true END) END) THEN CASE WHEN (e1.v -> 'level') IS NULL OR jsonb_typeof((e1.v -> 'level')) = 'null' THEN NULL::smallint WHEN (jsonb_typeof((e1.v -> 'level')) = 'number' AND CASE WHEN jsonb_typeof((e1.v -> 'level')) = 'number' THEN ((e1.v -> 'level'))::numeric = trunc(((e1.v -> 'level'))::numeric) AND ((e1.v -> 'level'))::numeric BETWEEN -32768 AND 32767 END) THEN ((e1.v -> 'level'))::numeric::int2 END END AS "level", CASE WHEN ((e1.v -> 'unlocked') IS NOT NULL AND jsonb_typeof((e1.v -> 'unlocked')) <> 'null') AND (CASE WHEN (e1.v -> 'unlocked') IS NULL OR jsonb_typeof((e1.v -> 'unlocked')) = 'null' THEN true ELSE (jsonb_typeof((e1.v -> 'unlocked')) = 'boolean') END) THEN CASE WHEN (e1.v -> 'unlocked') IS NULL OR jsonb_typeof((e1.v -> 'unlocked')) = 'null' THEN NULL::boolean WHEN jsonb_typeof((e1.v -> 'unlocked')) = 'boolean' THEN ((e1.v -> 'unlocked'))::boolean END END AS "unlocked" FROM (SELECT $1 AS i, $2 AS b) AS s CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof((s.b -> 'bots')) = 'object' THEN (s.b -> 'bots') END) AS e1(k, v) WHERE jsonb_typeof(s.b) = 'object' AND (s.b -> 'bots') IS NOT NULL AND e1.k NOT IN ('selected') AND coalesce(true, false) AND coalesce(24 + (octet_length(e1.k) + 7) / 4 * 4 <= 2704, false) AND coalesce(jsonb_typeof(e1.v) = 'object', false);
END
$$;

-- init statement 57
CREATE OR REPLACE FUNCTION decant."user_rows_user_config"(bigint, jsonb) RETURNS TABLE ("user_id" bigint, "extra" jsonb, "mans" smallint, "mode" text)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp IMMUTABLE PARALLEL SAFE ROWS 50 SET extra_float_digits = 1 SET jit = off AS
$$
#variable_conflict use_column
BEGIN
    RETURN QUERY
SELECT s.i AS "user_id", (SELECT json_object_agg(x.key, x.value)::jsonb FROM jsonb_each(CASE WHEN jsonb_typeof(((s.b -> 'marriage') -> 'config')) = 'object' THEN ((s.b -> 'marriage') -> 'config') END) AS x WHERE (x.key NOT IN ('mans', 'mode') OR jsonb_typeof(x.value) = 'null')) AS "extra", CASE WHEN ((((s.b -> 'marriage') -> 'config') -> 'mans') IS NOT NULL AND jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mans')) <> 'null') AND (CASE WHEN (((s.b -> 'marriage') -> 'config') -> 'mans') IS NULL OR jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mans')) = 'null' THEN true ELSE ((jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mans')) = 'number' AND CASE WHEN jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mans')) = 'number' THEN ((((s.b -> 'marriage') -> 'config') -> 'mans'))::numeric = trunc(((((s.b -> 'marriage') -> 'config') -> 'mans'))::numeric) AND ((((s.b -> 'marriage') -> 'config') -> 'mans'))::numeric BETWEEN -32768 AND 32767 END) AND CASE WHEN jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mans')) = 'number' THEN ((((s.b -> 'marriage') -> 'config') -> 'mans'))::numeric >= '0' ELSE true END) END) THEN CASE WHEN (((s.b -> 'marriage') -> 'config') -> 'mans') IS NULL OR jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mans')) = 'null' THEN NULL::smallint WHEN (jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mans')) = 'number' AND CASE WHEN jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mans')) = 'number' THEN ((((s.b -> 'marriage') -> 'config') -> 'mans'))::numeric = trunc(((((s.b -> 'marriage') -> 'config') -> 'mans'))::numeric) AND ((((s.b -> 'marriage') -> 'config') -> 'mans'))::numeric BETWEEN -32768 AND 32767 END) THEN ((((s.b -> 'marriage') -> 'config') -> 'mans'))::numeric::int2 END END AS "mans", CASE WHEN ((((s.b -> 'marriage') -> 'config') -> 'mode') IS NOT NULL AND jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mode')) <> 'null') AND (CASE WHEN (((s.b -> 'marriage') -> 'config') -> 'mode') IS NULL OR jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mode')) = 'null' THEN true ELSE (jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mode')) = 'string' AND CASE WHEN jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mode')) = 'string' THEN ((((s.b -> 'marriage') -> 'config') -> 'mode') #>> '{}') IN ('kidnap', 'murder', 'classic') ELSE true END) END) THEN CASE WHEN (((s.b -> 'marriage') -> 'config') -> 'mode') IS NULL OR jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mode')) = 'null' THEN NULL::text WHEN jsonb_typeof((((s.b -> 'marriage') -> 'config') -> 'mode')) = 'string' THEN ((((s.b -> 'marriage') -> 'config') -> 'mode') #>> '{}') END END AS "mode" FROM (SELECT $1 AS i, $2 AS b) AS s  WHERE jsonb_typeof(s.b) = 'object' AND (s.b -> 'marriage') IS NOT NULL AND jsonb_typeof((s.b -> 'marriage')) = 'object' AND ((s.b -> 'marriage') -> 'config') IS NOT NULL AND coalesce(jsonb_typeof(((s.b -> 'marriage') -> 'config')) = 'object', false);
END
$$;

-- init statement 58
CREATE OR REPLACE FUNCTION decant."user_rows_user_preference"(bigint, jsonb) RETURNS TABLE ("user_id" bigint, "key" text, "value" jsonb)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp IMMUTABLE PARALLEL SAFE ROWS 50 SET extra_float_digits = 1 SET jit = off AS
$$
#variable_conflict use_column
BEGIN
    RETURN QUERY
SELECT s.i AS "user_id", e1.k AS "key", CASE WHEN e1.v IS NULL OR jsonb_typeof(e1.v) = 'null' THEN NULL::jsonb WHEN true THEN e1.v END AS "value" FROM (SELECT $1 AS i, $2 AS b) AS s CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof((s.b -> 'pref')) = 'object' THEN (s.b -> 'pref') END) AS e1(k, v) WHERE jsonb_typeof(s.b) = 'object' AND (s.b -> 'pref') IS NOT NULL AND coalesce(true, false) AND coalesce(24 + (octet_length(e1.k) + 7) / 4 * 4 <= 2704, false) AND coalesce(CASE WHEN e1.v IS NULL OR jsonb_typeof(e1.v) = 'null' THEN true ELSE (true) END, false);
END
$$;

-- init statement 59
CREATE OR REPLACE FUNCTION decant."user_rows_user_selected_bot"(bigint, jsonb) RETURNS TABLE ("user_id" bigint, "bot_id" text, "position" smallint)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp IMMUTABLE PARALLEL SAFE ROWS 50 SET extra_float_digits = 1 SET jit = off AS
$$
#variable_conflict use_column
BEGIN
    RETURN QUERY
SELECT s.i AS "user_id", CASE WHEN a.v IS NULL OR jsonb_typeof(a.v) = 'null' THEN NULL::text WHEN jsonb_typeof(a.v) = 'string' THEN (a.v #>> '{}') END AS "bot_id", CASE WHEN to_jsonb((a.n - 1)) IS NULL OR jsonb_typeof(to_jsonb((a.n - 1))) = 'null' THEN NULL::smallint WHEN (jsonb_typeof(to_jsonb((a.n - 1))) = 'number' AND CASE WHEN jsonb_typeof(to_jsonb((a.n - 1))) = 'number' THEN (to_jsonb((a.n - 1)))::numeric = trunc((to_jsonb((a.n - 1)))::numeric) AND (to_jsonb((a.n - 1)))::numeric BETWEEN -32768 AND 32767 END) THEN (to_jsonb((a.n - 1)))::numeric::int2 END AS "position" FROM (SELECT $1 AS i, $2 AS b) AS s CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(((s.b -> 'bots') -> 'selected')) = 'array' THEN ((s.b -> 'bots') -> 'selected') END) WITH ORDINALITY AS a(v, n) WHERE jsonb_typeof(s.b) = 'object' AND (s.b -> 'bots') IS NOT NULL AND jsonb_typeof((s.b -> 'bots')) = 'object' AND ((s.b -> 'bots') -> 'selected') IS NOT NULL AND coalesce(CASE WHEN to_jsonb((a.n - 1)) IS NULL OR jsonb_typeof(to_jsonb((a.n - 1))) = 'null' THEN true ELSE ((jsonb_typeof(to_jsonb((a.n - 1))) = 'number' AND CASE WHEN jsonb_typeof(to_jsonb((a.n - 1))) = 'number' THEN (to_jsonb((a.n - 1)))::numeric = trunc((to_jsonb((a.n - 1)))::numeric) AND (to_jsonb((a.n - 1)))::numeric BETWEEN -32768 AND 32767 END)) END, false) AND coalesce(CASE WHEN a.v IS NULL OR jsonb_typeof(a.v) = 'null' THEN false ELSE (jsonb_typeof(a.v) = 'string') END, false) AND coalesce(CASE WHEN to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s.b -> 'bots') -> 'selected')) = 'array' THEN ((s.b -> 'bots') -> 'selected') END) - 1) IS NULL OR jsonb_typeof(to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s.b -> 'bots') -> 'selected')) = 'array' THEN ((s.b -> 'bots') -> 'selected') END) - 1)) = 'null' THEN true ELSE ((jsonb_typeof(to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s.b -> 'bots') -> 'selected')) = 'array' THEN ((s.b -> 'bots') -> 'selected') END) - 1)) = 'number' AND CASE WHEN jsonb_typeof(to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s.b -> 'bots') -> 'selected')) = 'array' THEN ((s.b -> 'bots') -> 'selected') END) - 1)) = 'number' THEN (to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s.b -> 'bots') -> 'selected')) = 'array' THEN ((s.b -> 'bots') -> 'selected') END) - 1))::numeric = trunc((to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s.b -> 'bots') -> 'selected')) = 'array' THEN ((s.b -> 'bots') -> 'selected') END) - 1))::numeric) AND (to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(((s.b -> 'bots') -> 'selected')) = 'array' THEN ((s.b -> 'bots') -> 'selected') END) - 1))::numeric BETWEEN -32768 AND 32767 END)) END, false);
END
$$;

-- init statement 60
CREATE OR REPLACE FUNCTION decant."user_rows_user_statistic"(bigint, jsonb) RETURNS TABLE ("user_id" bigint, "mode" text, "statistic_id" text, "value" numeric)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp IMMUTABLE PARALLEL SAFE ROWS 50 SET extra_float_digits = 1 SET jit = off AS
$$
#variable_conflict use_column
BEGIN
    RETURN QUERY
SELECT s.i AS "user_id", e2.k AS "mode", e3.k AS "statistic_id", CASE WHEN e3.v IS NULL OR jsonb_typeof(e3.v) = 'null' THEN NULL::numeric WHEN jsonb_typeof(e3.v) = 'number' THEN (e3.v)::numeric END AS "value" FROM (SELECT $1 AS i, $2 AS b) AS s CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(((s.b -> 'marriage') -> 'stats')) = 'object' THEN ((s.b -> 'marriage') -> 'stats') END) AS e2(k, v) CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(e2.v) = 'object' THEN e2.v END) AS e3(k, v) WHERE jsonb_typeof(s.b) = 'object' AND (s.b -> 'marriage') IS NOT NULL AND jsonb_typeof((s.b -> 'marriage')) = 'object' AND ((s.b -> 'marriage') -> 'stats') IS NOT NULL AND e2.k NOT IN ('lastPlayed') AND coalesce(true AND char_length(e2.k) <= 64, false) AND coalesce(true AND char_length(e3.k) <= 64, false) AND coalesce(24 + (octet_length(e2.k) + 7) / 4 * 4 + (octet_length(e3.k) + 7) / 4 * 4 <= 2704, false) AND coalesce(CASE WHEN e3.v IS NULL OR jsonb_typeof(e3.v) = 'null' THEN false ELSE (jsonb_typeof(e3.v) = 'number' AND CASE WHEN jsonb_typeof(e3.v) = 'number' THEN (e3.v)::numeric >= '0' ELSE true END) END, false) AND coalesce(NOT (coalesce((e2.k) = ('global'::text), false) AND coalesce((e3.k) = ('xp'::text), false)), false) AND coalesce(NOT (coalesce((e2.k) = ('global'::text), false) AND coalesce((e3.k) = ('lastPlayed'::text), false)), false)
UNION ALL
SELECT s.i AS "user_id", 'global'::text AS "mode", 'xp'::text AS "statistic_id", CASE WHEN (s.b -> 'xp') IS NULL OR jsonb_typeof((s.b -> 'xp')) = 'null' THEN NULL::numeric WHEN jsonb_typeof((s.b -> 'xp')) = 'number' THEN ((s.b -> 'xp'))::numeric END AS "value" FROM (SELECT $1 AS i, $2 AS b) AS s  WHERE jsonb_typeof(s.b) = 'object' AND (s.b -> 'xp') IS NOT NULL AND coalesce(CASE WHEN (s.b -> 'xp') IS NULL OR jsonb_typeof((s.b -> 'xp')) = 'null' THEN false ELSE (jsonb_typeof((s.b -> 'xp')) = 'number' AND CASE WHEN jsonb_typeof((s.b -> 'xp')) = 'number' THEN ((s.b -> 'xp'))::numeric >= '0' ELSE true END) END, false)
UNION ALL
SELECT s.i AS "user_id", 'global'::text AS "mode", 'lastPlayed'::text AS "statistic_id", CASE WHEN (((s.b -> 'marriage') -> 'stats') -> 'lastPlayed') IS NULL OR jsonb_typeof((((s.b -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'null' THEN NULL::numeric WHEN jsonb_typeof((((s.b -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'number' THEN ((((s.b -> 'marriage') -> 'stats') -> 'lastPlayed'))::numeric END AS "value" FROM (SELECT $1 AS i, $2 AS b) AS s  WHERE jsonb_typeof(s.b) = 'object' AND (s.b -> 'marriage') IS NOT NULL AND jsonb_typeof((s.b -> 'marriage')) = 'object' AND ((s.b -> 'marriage') -> 'stats') IS NOT NULL AND jsonb_typeof(((s.b -> 'marriage') -> 'stats')) = 'object' AND (((s.b -> 'marriage') -> 'stats') -> 'lastPlayed') IS NOT NULL AND coalesce(CASE WHEN (((s.b -> 'marriage') -> 'stats') -> 'lastPlayed') IS NULL OR jsonb_typeof((((s.b -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'null' THEN false ELSE (jsonb_typeof((((s.b -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'number' AND CASE WHEN jsonb_typeof((((s.b -> 'marriage') -> 'stats') -> 'lastPlayed')) = 'number' THEN ((((s.b -> 'marriage') -> 'stats') -> 'lastPlayed'))::numeric >= '0' ELSE true END) END, false) AND coalesce(NOT (coalesce(('global'::text) = ('global'::text), false) AND coalesce(('lastPlayed'::text) = ('xp'::text), false)), false);
END
$$;

-- init statement 61
CREATE OR REPLACE FUNCTION decant."user_residual"(blob jsonb) RETURNS jsonb
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp IMMUTABLE PARALLEL SAFE SET jit = off AS
$$
BEGIN
    RETURN coalesce(CASE WHEN jsonb_typeof($1) <> 'object' OR $1 = '{}'::jsonb THEN $1 ELSE (SELECT json_object_agg(q0.k, q0.r)::jsonb FROM (SELECT e0.key AS k, CASE e0.key WHEN 'bots' THEN CASE WHEN jsonb_typeof(e0.value) <> 'object' OR e0.value = '{}'::jsonb THEN e0.value ELSE (SELECT json_object_agg(q1.k, q1.r)::jsonb FROM (SELECT e1.key AS k, CASE e1.key WHEN 'selected' THEN CASE WHEN jsonb_typeof(e1.value) <> 'array' OR jsonb_array_length(e1.value) = 0 OR NOT coalesce(CASE WHEN to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(e1.value) = 'array' THEN e1.value END) - 1) IS NULL OR jsonb_typeof(to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(e1.value) = 'array' THEN e1.value END) - 1)) = 'null' THEN true ELSE ((jsonb_typeof(to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(e1.value) = 'array' THEN e1.value END) - 1)) = 'number' AND CASE WHEN jsonb_typeof(to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(e1.value) = 'array' THEN e1.value END) - 1)) = 'number' THEN (to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(e1.value) = 'array' THEN e1.value END) - 1))::numeric = trunc((to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(e1.value) = 'array' THEN e1.value END) - 1))::numeric) AND (to_jsonb(jsonb_array_length(CASE WHEN jsonb_typeof(e1.value) = 'array' THEN e1.value END) - 1))::numeric BETWEEN -32768 AND 32767 END)) END, false) THEN e1.value ELSE (SELECT CASE WHEN bool_and(q.r IS NULL) THEN NULL ELSE json_agg(coalesce(q.r, '{}'::jsonb) ORDER BY q.n)::jsonb END FROM (SELECT b.n, CASE WHEN coalesce(CASE WHEN to_jsonb((b.n - 1)) IS NULL OR jsonb_typeof(to_jsonb((b.n - 1))) = 'null' THEN true ELSE ((jsonb_typeof(to_jsonb((b.n - 1))) = 'number' AND CASE WHEN jsonb_typeof(to_jsonb((b.n - 1))) = 'number' THEN (to_jsonb((b.n - 1)))::numeric = trunc((to_jsonb((b.n - 1)))::numeric) AND (to_jsonb((b.n - 1)))::numeric BETWEEN -32768 AND 32767 END)) END, false) AND coalesce(CASE WHEN b.v IS NULL OR jsonb_typeof(b.v) = 'null' THEN false ELSE (jsonb_typeof(b.v) = 'string') END, false) THEN NULL::jsonb ELSE b.v END AS r FROM jsonb_array_elements(e1.value) WITH ORDINALITY AS b(v, n) OFFSET 0) AS q) END ELSE CASE WHEN coalesce(true, false) AND coalesce(24 + (octet_length(e1.key) + 7) / 4 * 4 <= 2704, false) AND coalesce(jsonb_typeof(e1.value) = 'object', false) THEN (SELECT json_object_agg(k.key, k.value)::jsonb FROM jsonb_each(e1.value) AS k WHERE jsonb_typeof(k.value) <> 'null' AND CASE k.key WHEN 'level' THEN NOT coalesce(CASE WHEN k.value IS NULL OR jsonb_typeof(k.value) = 'null' THEN true ELSE ((jsonb_typeof(k.value) = 'number' AND CASE WHEN jsonb_typeof(k.value) = 'number' THEN (k.value)::numeric = trunc((k.value)::numeric) AND (k.value)::numeric BETWEEN -32768 AND 32767 END) AND CASE WHEN jsonb_typeof(k.value) = 'number' THEN (k.value)::numeric >= '0' ELSE true END AND CASE WHEN jsonb_typeof(k.value) = 'number' THEN (k.value)::numeric <= '100' ELSE true END) END, false) WHEN 'unlocked' THEN NOT coalesce(CASE WHEN k.value IS NULL OR jsonb_typeof(k.value) = 'null' THEN true ELSE (jsonb_typeof(k.value) = 'boolean') END, false) ELSE false END) ELSE e1.value END END AS r FROM jsonb_each(e0.value) AS e1 OFFSET 0) AS q1 WHERE q1.r IS NOT NULL) END WHEN 'marriage' THEN CASE WHEN jsonb_typeof(e0.value) <> 'object' OR e0.value = '{}'::jsonb THEN e0.value ELSE (SELECT json_object_agg(q1.k, q1.r)::jsonb FROM (SELECT e1.key AS k, CASE e1.key WHEN 'achievements' THEN CASE WHEN jsonb_typeof(e1.value) <> 'object' OR e1.value = '{}'::jsonb THEN e1.value ELSE (SELECT json_object_agg(q2.k, q2.r)::jsonb FROM (SELECT e2.key AS k, CASE WHEN coalesce(true, false) AND coalesce(24 + (octet_length(e2.key) + 7) / 4 * 4 <= 2704, false) AND coalesce(jsonb_typeof(e2.value) = 'object', false) THEN (SELECT json_object_agg(k.key, k.value)::jsonb FROM jsonb_each(e2.value) AS k WHERE jsonb_typeof(k.value) <> 'null' AND CASE k.key WHEN 'progress' THEN NOT coalesce(CASE WHEN k.value IS NULL OR jsonb_typeof(k.value) = 'null' THEN true ELSE ((jsonb_typeof(k.value) = 'number' AND CASE WHEN jsonb_typeof(k.value) = 'number' THEN (k.value)::numeric = trunc((k.value)::numeric) AND (k.value)::numeric BETWEEN -2147483648 AND 2147483647 END) AND CASE WHEN jsonb_typeof(k.value) = 'number' THEN (k.value)::numeric >= '0' ELSE true END) END, false) WHEN 'unlockedAt' THEN NOT coalesce(CASE WHEN k.value IS NULL OR jsonb_typeof(k.value) = 'null' THEN true ELSE ((jsonb_typeof(k.value) = 'number' AND CASE WHEN jsonb_typeof(k.value) = 'number' THEN (k.value)::numeric * 1000 = trunc((k.value)::numeric * 1000) AND (k.value)::numeric * 1000 BETWEEN -62135596800000000 AND 253402300799999999 END)) END, false) ELSE false END) ELSE e2.value END AS r FROM jsonb_each(e1.value) AS e2 OFFSET 0) AS q2 WHERE q2.r IS NOT NULL) END WHEN 'config' THEN CASE WHEN coalesce(jsonb_typeof(e1.value) = 'object', false) THEN (SELECT json_object_agg(k.key, k.value)::jsonb FROM jsonb_each(e1.value) AS k WHERE jsonb_typeof(k.value) <> 'null' AND CASE k.key WHEN 'mans' THEN NOT coalesce(CASE WHEN k.value IS NULL OR jsonb_typeof(k.value) = 'null' THEN true ELSE ((jsonb_typeof(k.value) = 'number' AND CASE WHEN jsonb_typeof(k.value) = 'number' THEN (k.value)::numeric = trunc((k.value)::numeric) AND (k.value)::numeric BETWEEN -32768 AND 32767 END) AND CASE WHEN jsonb_typeof(k.value) = 'number' THEN (k.value)::numeric >= '0' ELSE true END) END, false) WHEN 'mode' THEN NOT coalesce(CASE WHEN k.value IS NULL OR jsonb_typeof(k.value) = 'null' THEN true ELSE (jsonb_typeof(k.value) = 'string' AND CASE WHEN jsonb_typeof(k.value) = 'string' THEN (k.value #>> '{}') IN ('kidnap', 'murder', 'classic') ELSE true END) END, false) ELSE false END) ELSE e1.value END WHEN 'stats' THEN CASE WHEN jsonb_typeof(e1.value) <> 'object' OR e1.value = '{}'::jsonb THEN e1.value ELSE (SELECT json_object_agg(q2.k, q2.r)::jsonb FROM (SELECT e2.key AS k, CASE e2.key WHEN 'lastPlayed' THEN CASE WHEN coalesce(CASE WHEN e2.value IS NULL OR jsonb_typeof(e2.value) = 'null' THEN false ELSE (jsonb_typeof(e2.value) = 'number' AND CASE WHEN jsonb_typeof(e2.value) = 'number' THEN (e2.value)::numeric >= '0' ELSE true END) END, false) AND coalesce(NOT (coalesce(('global'::text) = ('global'::text), false) AND coalesce(('lastPlayed'::text) = ('xp'::text), false)), false) THEN NULL::jsonb ELSE e2.value END ELSE CASE WHEN jsonb_typeof(e2.value) <> 'object' OR e2.value = '{}'::jsonb THEN e2.value ELSE (SELECT json_object_agg(q3.k, q3.r)::jsonb FROM (SELECT e3.key AS k, CASE WHEN coalesce(true AND char_length(e2.key) <= 64, false) AND coalesce(true AND char_length(e3.key) <= 64, false) AND coalesce(24 + (octet_length(e2.key) + 7) / 4 * 4 + (octet_length(e3.key) + 7) / 4 * 4 <= 2704, false) AND coalesce(CASE WHEN e3.value IS NULL OR jsonb_typeof(e3.value) = 'null' THEN false ELSE (jsonb_typeof(e3.value) = 'number' AND CASE WHEN jsonb_typeof(e3.value) = 'number' THEN (e3.value)::numeric >= '0' ELSE true END) END, false) AND coalesce(NOT (coalesce((e2.key) = ('global'::text), false) AND coalesce((e3.key) = ('xp'::text), false)), false) AND coalesce(NOT (coalesce((e2.key) = ('global'::text), false) AND coalesce((e3.key) = ('lastPlayed'::text), false)), false) THEN NULL::jsonb ELSE e3.value END AS r FROM jsonb_each(e2.value) AS e3 OFFSET 0) AS q3 WHERE q3.r IS NOT NULL) END END AS r FROM jsonb_each(e1.value) AS e2 OFFSET 0) AS q2 WHERE q2.r IS NOT NULL) END ELSE e1.value END AS r FROM jsonb_each(e0.value) AS e1 OFFSET 0) AS q1 WHERE q1.r IS NOT NULL) END WHEN 'pref' THEN CASE WHEN jsonb_typeof(e0.value) <> 'object' OR e0.value = '{}'::jsonb THEN e0.value ELSE (SELECT json_object_agg(q1.k, q1.r)::jsonb FROM (SELECT e1.key AS k, CASE WHEN coalesce(true, false) AND coalesce(24 + (octet_length(e1.key) + 7) / 4 * 4 <= 2704, false) AND coalesce(CASE WHEN e1.value IS NULL OR jsonb_typeof(e1.value) = 'null' THEN true ELSE (true) END, false) THEN NULL::jsonb ELSE e1.value END AS r FROM jsonb_each(e0.value) AS e1 OFFSET 0) AS q1 WHERE q1.r IS NOT NULL) END WHEN 'xp' THEN CASE WHEN coalesce(CASE WHEN e0.value IS NULL OR jsonb_typeof(e0.value) = 'null' THEN false ELSE (jsonb_typeof(e0.value) = 'number' AND CASE WHEN jsonb_typeof(e0.value) = 'number' THEN (e0.value)::numeric >= '0' ELSE true END) END, false) THEN NULL::jsonb ELSE e0.value END ELSE e0.value END AS r FROM jsonb_each($1) AS e0 OFFSET 0) AS q0 WHERE q0.r IS NOT NULL) END, '{}'::jsonb);
END
$$;

-- init statement 62
CREATE OR REPLACE FUNCTION decant."user_rebuild"(bigint, jsonb) RETURNS jsonb
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp STABLE SET extra_float_digits = 1 SET jit = off AS
$$
#variable_conflict use_column
DECLARE _decant_blob jsonb := $2; _decant_entries jsonb; _decant_items jsonb; _decant_e0 jsonb; _decant_e1 jsonb; _decant_e2 jsonb; _decant_e3 jsonb; _decant_e4 jsonb; _decant_e5 jsonb; _decant_e6 jsonb; _decant_e7 jsonb; _decant_n0 jsonb; _decant_n1 jsonb; _decant_n2 jsonb; _decant_n3 jsonb; _decant_n4 jsonb;
BEGIN
    -- the rows of every rule not through an array, nested into one
    -- object in one statement, grafted once onto the residual
    SELECT (SELECT q.v FROM (SELECT json_object_agg(q.k0, q.v)::jsonb AS v FROM (SELECT q.k0 AS k0, json_object_agg(q.k1, q.v)::jsonb AS v FROM (SELECT t."mode" AS k0, t."statistic_id" AS k1, to_jsonb(t."value") AS v FROM "public"."user_statistic" AS t WHERE t."user_id" = $1 AND NOT (t."mode" IS NOT DISTINCT FROM 'global'::text AND t."statistic_id" IS NOT DISTINCT FROM 'xp'::text) AND NOT (t."mode" IS NOT DISTINCT FROM 'global'::text AND t."statistic_id" IS NOT DISTINCT FROM 'lastPlayed'::text)) AS q GROUP BY q.k0) AS q HAVING count(*) > 0) AS q),
        (SELECT q.v FROM (SELECT jsonb_build_object('xp', q.v) AS v FROM (SELECT to_jsonb(t."value") AS v FROM "public"."user_statistic" AS t WHERE t."user_id" = $1 AND t."mode" IS NOT DISTINCT FROM 'global'::text AND t."statistic_id" IS NOT DISTINCT FROM 'xp'::text) AS q) AS q),
        (SELECT q.v FROM (SELECT jsonb_build_object('lastPlayed', q.v) AS v FROM (SELECT to_jsonb(t."value") AS v FROM "public"."user_statistic" AS t WHERE t."user_id" = $1 AND t."mode" IS NOT DISTINCT FROM 'global'::text AND t."statistic_id" IS NOT DISTINCT FROM 'lastPlayed'::text AND NOT (t."mode" IS NOT DISTINCT FROM 'global'::text AND t."statistic_id" IS NOT DISTINCT FROM 'xp'::text)) AS q) AS q),
        (SELECT q.v FROM (SELECT json_object_agg(q.k0, q.v)::jsonb AS v FROM (SELECT t."achievement_id" AS k0, (CASE WHEN t."progress" IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('progress', to_jsonb(t."progress")) END || CASE WHEN t."unlocked_at" IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('unlockedAt', to_jsonb(decant.epoch_ms(t."unlocked_at"))) END || coalesce(t."extra", '{}'::jsonb)) AS v FROM "public"."user_achievement" AS t WHERE t."user_id" = $1) AS q HAVING count(*) > 0) AS q),
        (SELECT jsonb_build_object('selected', CASE WHEN count(*) = max(t."position") + 1 THEN json_agg(to_jsonb(t."bot_id") ORDER BY t."position")::jsonb ELSE jsonb_build_object('decant:positions', json_object_agg(t."position", to_jsonb(t."bot_id"))::jsonb) END) FROM "public"."user_selected_bot" AS t WHERE t."user_id" = $1 HAVING count(*) > 0),
        (SELECT q.v FROM (SELECT json_object_agg(q.k0, q.v)::jsonb AS v FROM (SELECT t."bot_id" AS k0, (CASE WHEN t."level" IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('level', to_jsonb(t."level")) END || CASE WHEN t."unlocked" IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('unlocked', to_jsonb(t."unlocked")) END || coalesce(t."extra", '{}'::jsonb)) AS v FROM "public"."user_bot" AS t WHERE t."user_id" = $1) AS q HAVING count(*) > 0) AS q),
        (SELECT q.v FROM (SELECT json_object_agg(q.k0, q.v)::jsonb AS v FROM (SELECT t."key" AS k0, t."value" AS v FROM "public"."user_preference" AS t WHERE t."user_id" = $1) AS q HAVING count(*) > 0) AS q),
        (SELECT q.v FROM (SELECT jsonb_build_object('config', q.v) AS v FROM (SELECT (CASE WHEN t."mans" IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('mans', to_jsonb(t."mans")) END || CASE WHEN t."mode" IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('mode', to_jsonb(t."mode")) END || coalesce(t."extra", '{}'::jsonb)) AS v FROM "public"."user_config" AS t WHERE t."user_id" = $1) AS q) AS q) INTO _decant_e0, _decant_e1, _decant_e2, _decant_e3, _decant_e4, _decant_e5, _decant_e6, _decant_e7;
    _decant_n0 := _decant_e3;
    _decant_n1 := decant.cat(_decant_e0, _decant_e2);
    _decant_n2 := decant.cat(_decant_e4, _decant_e5);
    _decant_n3 := decant.cat(decant.cat(_decant_e7, CASE WHEN _decant_n0 IS NOT NULL THEN jsonb_build_object('achievements', _decant_n0) END), CASE WHEN _decant_n1 IS NOT NULL THEN jsonb_build_object('stats', _decant_n1) END);
    _decant_n4 := _decant_e6;
    _decant_entries := decant.cat(decant.cat(decant.cat(_decant_e1, CASE WHEN _decant_n2 IS NOT NULL THEN jsonb_build_object('bots', _decant_n2) END), CASE WHEN _decant_n3 IS NOT NULL THEN jsonb_build_object('marriage', _decant_n3) END), CASE WHEN _decant_n4 IS NOT NULL THEN jsonb_build_object('pref', _decant_n4) END);
    IF _decant_blob IS NULL OR _decant_blob = '{}'::jsonb THEN
        _decant_blob := coalesce(_decant_entries, _decant_blob);
    ELSIF _decant_entries IS NOT NULL THEN
        _decant_blob := decant.graft(_decant_blob, _decant_entries);
    END IF;
    IF _decant_blob IS NULL AND $2 IS NOT NULL THEN
        -- never hand a caller (or a patch's write) a blob that lost its residual
        RAISE EXCEPTION 'decant: the blob of user % rebuilt as NULL from a residual and rows', $1 USING ERRCODE = 'data_corrupted', HINT = 'a defect of decant''s SQL rebuild: report it; `decant rollback --user` rebuilds through Rust';
    END IF;
    RETURN _decant_blob;
END
$$;

-- init statement 63
CREATE OR REPLACE FUNCTION decant."user_write"(bigint, boolean, jsonb, jsonb) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET extra_float_digits = 1 SET jit = off AS
$$
#variable_conflict use_column
DECLARE _decant_residual jsonb; _decant_roots text[];
BEGIN
    -- the spec's depth limit: a container at level N is nested N + 1 deep
    IF jsonb_path_exists($3, 'strict $.**{128} ? (@.type() == "object" || @.type() == "array")') THEN
        RAISE EXCEPTION 'decant: the blob of user % is nested deeper than 128 levels', $1 USING ERRCODE = 'program_limit_exceeded', HINT = 'the spec''s [settings] max_depth, applied on every path; flatten the blob or raise the limit';
    END IF;
    IF NOT $2 THEN
        UPDATE "public"."user" AS s SET "data" = $3 WHERE s."id" = $1;
        RETURN;
    END IF;
    IF $4 IS NULL OR EXISTS (SELECT 1 FROM jsonb_array_elements($4) AS p(path) WHERE (jsonb_array_length(p.path) <= 0 OR p.path ->> 0 = 'marriage') AND (jsonb_array_length(p.path) <= 1 OR p.path ->> 1 = 'achievements')) THEN
    WITH n AS MATERIALIZED (SELECT * FROM decant."user_rows_user_achievement"($1, $3)),
         gone AS (DELETE FROM "public"."user_achievement" AS o WHERE o."user_id" = $1 AND (o."user_id", o."achievement_id") NOT IN (SELECT n."user_id", n."achievement_id" FROM n))
    INSERT INTO "public"."user_achievement" ("user_id", "achievement_id", "extra", "progress", "unlocked_at") SELECT n."user_id", n."achievement_id", n."extra", n."progress", n."unlocked_at" FROM n WHERE NOT EXISTS (SELECT 1 FROM "public"."user_achievement" AS o WHERE o."user_id" = $1 AND n."user_id" = o."user_id" AND n."achievement_id" = o."achievement_id" AND ROW(o."user_id", o."achievement_id", o."extra", o."progress", o."unlocked_at")::text = ROW(n."user_id", n."achievement_id", n."extra", n."progress", n."unlocked_at")::text)
    ON CONFLICT ("user_id", "achievement_id") DO UPDATE SET "extra" = EXCLUDED."extra", "progress" = EXCLUDED."progress", "unlocked_at" = EXCLUDED."unlocked_at";
    END IF;
    IF $4 IS NULL OR EXISTS (SELECT 1 FROM jsonb_array_elements($4) AS p(path) WHERE (jsonb_array_length(p.path) <= 0 OR p.path ->> 0 = 'bots')) THEN
    WITH n AS MATERIALIZED (SELECT * FROM decant."user_rows_user_bot"($1, $3)),
         gone AS (DELETE FROM "public"."user_bot" AS o WHERE o."user_id" = $1 AND (o."user_id", o."bot_id") NOT IN (SELECT n."user_id", n."bot_id" FROM n))
    INSERT INTO "public"."user_bot" ("user_id", "bot_id", "extra", "level", "unlocked") SELECT n."user_id", n."bot_id", n."extra", n."level", n."unlocked" FROM n WHERE NOT EXISTS (SELECT 1 FROM "public"."user_bot" AS o WHERE o."user_id" = $1 AND n."user_id" = o."user_id" AND n."bot_id" = o."bot_id" AND ROW(o."user_id", o."bot_id", o."extra", o."level", o."unlocked")::text = ROW(n."user_id", n."bot_id", n."extra", n."level", n."unlocked")::text)
    ON CONFLICT ("user_id", "bot_id") DO UPDATE SET "extra" = EXCLUDED."extra", "level" = EXCLUDED."level", "unlocked" = EXCLUDED."unlocked";
    END IF;
    IF $4 IS NULL OR EXISTS (SELECT 1 FROM jsonb_array_elements($4) AS p(path) WHERE (jsonb_array_length(p.path) <= 0 OR p.path ->> 0 = 'marriage') AND (jsonb_array_length(p.path) <= 1 OR p.path ->> 1 = 'config')) THEN
    WITH n AS MATERIALIZED (SELECT * FROM decant."user_rows_user_config"($1, $3)),
         gone AS (DELETE FROM "public"."user_config" AS o WHERE o."user_id" = $1 AND (o."user_id") NOT IN (SELECT n."user_id" FROM n))
    INSERT INTO "public"."user_config" ("user_id", "extra", "mans", "mode") SELECT n."user_id", n."extra", n."mans", n."mode" FROM n WHERE NOT EXISTS (SELECT 1 FROM "public"."user_config" AS o WHERE o."user_id" = $1 AND n."user_id" = o."user_id" AND ROW(o."user_id", o."extra", o."mans", o."mode")::text = ROW(n."user_id", n."extra", n."mans", n."mode")::text)
    ON CONFLICT ("user_id") DO UPDATE SET "extra" = EXCLUDED."extra", "mans" = EXCLUDED."mans", "mode" = EXCLUDED."mode";
    END IF;
    IF $4 IS NULL OR EXISTS (SELECT 1 FROM jsonb_array_elements($4) AS p(path) WHERE (jsonb_array_length(p.path) <= 0 OR p.path ->> 0 = 'pref')) THEN
    WITH n AS MATERIALIZED (SELECT * FROM decant."user_rows_user_preference"($1, $3)),
         gone AS (DELETE FROM "public"."user_preference" AS o WHERE o."user_id" = $1 AND (o."user_id", o."key") NOT IN (SELECT n."user_id", n."key" FROM n))
    INSERT INTO "public"."user_preference" ("user_id", "key", "value") SELECT n."user_id", n."key", n."value" FROM n WHERE NOT EXISTS (SELECT 1 FROM "public"."user_preference" AS o WHERE o."user_id" = $1 AND n."user_id" = o."user_id" AND n."key" = o."key" AND ROW(o."user_id", o."key", o."value")::text = ROW(n."user_id", n."key", n."value")::text)
    ON CONFLICT ("user_id", "key") DO UPDATE SET "value" = EXCLUDED."value";
    END IF;
    IF $4 IS NULL OR EXISTS (SELECT 1 FROM jsonb_array_elements($4) AS p(path) WHERE (jsonb_array_length(p.path) <= 0 OR p.path ->> 0 = 'bots') AND (jsonb_array_length(p.path) <= 1 OR p.path ->> 1 = 'selected')) THEN
    WITH n AS MATERIALIZED (SELECT * FROM decant."user_rows_user_selected_bot"($1, $3)),
         gone AS (DELETE FROM "public"."user_selected_bot" AS o WHERE o."user_id" = $1 AND (o."user_id", o."position") NOT IN (SELECT n."user_id", n."position" FROM n))
    INSERT INTO "public"."user_selected_bot" ("user_id", "bot_id", "position") SELECT n."user_id", n."bot_id", n."position" FROM n WHERE NOT EXISTS (SELECT 1 FROM "public"."user_selected_bot" AS o WHERE o."user_id" = $1 AND n."user_id" = o."user_id" AND n."position" = o."position" AND ROW(o."user_id", o."bot_id", o."position")::text = ROW(n."user_id", n."bot_id", n."position")::text)
    ON CONFLICT ("user_id", "position") DO UPDATE SET "bot_id" = EXCLUDED."bot_id";
    END IF;
    IF $4 IS NULL OR EXISTS (SELECT 1 FROM jsonb_array_elements($4) AS p(path) WHERE (jsonb_array_length(p.path) <= 0 OR p.path ->> 0 = 'marriage') AND (jsonb_array_length(p.path) <= 1 OR p.path ->> 1 = 'stats')) OR EXISTS (SELECT 1 FROM jsonb_array_elements($4) AS p(path) WHERE (jsonb_array_length(p.path) <= 0 OR p.path ->> 0 = 'xp')) OR EXISTS (SELECT 1 FROM jsonb_array_elements($4) AS p(path) WHERE (jsonb_array_length(p.path) <= 0 OR p.path ->> 0 = 'marriage') AND (jsonb_array_length(p.path) <= 1 OR p.path ->> 1 = 'stats') AND (jsonb_array_length(p.path) <= 2 OR p.path ->> 2 = 'lastPlayed')) THEN
    WITH n AS MATERIALIZED (SELECT * FROM decant."user_rows_user_statistic"($1, $3)),
         gone AS (DELETE FROM "public"."user_statistic" AS o WHERE o."user_id" = $1 AND (o."user_id", o."mode", o."statistic_id") NOT IN (SELECT n."user_id", n."mode", n."statistic_id" FROM n))
    INSERT INTO "public"."user_statistic" ("user_id", "mode", "statistic_id", "value") SELECT n."user_id", n."mode", n."statistic_id", n."value" FROM n WHERE NOT EXISTS (SELECT 1 FROM "public"."user_statistic" AS o WHERE o."user_id" = $1 AND n."user_id" = o."user_id" AND n."mode" = o."mode" AND n."statistic_id" = o."statistic_id" AND ROW(o."user_id", o."mode", o."statistic_id", o."value")::text = ROW(n."user_id", n."mode", n."statistic_id", n."value")::text)
    ON CONFLICT ("user_id", "mode", "statistic_id") DO UPDATE SET "value" = EXCLUDED."value";
    END IF;
    IF $4 IS NULL THEN
        _decant_residual := decant."user_residual"($3);
    ELSE
        -- the root's keys leave their residuals independently: only
        -- the changed ones are computed again (all of it when the stored
        -- residual is no object: the blob before the patch was none);
        -- an IF, not a CASE: the planner computes a function of constant
        -- arguments in every arm of a CASE, the whole blob's residual too
        _decant_roots := ARRAY(SELECT DISTINCT p.path ->> 0 FROM jsonb_array_elements($4) AS p(path));
        SELECT s."data" INTO _decant_residual FROM "public"."user" AS s WHERE s."id" = $1;
        IF jsonb_typeof(_decant_residual) = 'object' THEN
            _decant_residual := (_decant_residual - _decant_roots) || decant."user_residual"((SELECT coalesce(json_object_agg(e.key, e.value)::jsonb, '{}') FROM jsonb_each($3) AS e WHERE e.key = ANY (_decant_roots)));
        ELSE
            _decant_residual := decant."user_residual"($3);
        END IF;
    END IF;
    UPDATE "public"."user" AS s SET "data" = _decant_residual WHERE s."id" = $1 AND s."migrated" AND s."data"::text IS DISTINCT FROM _decant_residual::text;
END
$$;

-- init statement 64
CREATE OR REPLACE FUNCTION decant."user_migrate"(bigint, jsonb) RETURNS boolean
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS
$$
#variable_conflict use_column
DECLARE _decant_residual jsonb;
BEGIN
    -- a blob a fixup would change is left to the daemon and the Rust
    -- layer, which apply them
    IF $2 IS NULL OR "public"."user_decant_blob_fails"($2) THEN
        RETURN false;
    END IF;
    -- rows already there (another tool, a hand fix) are not adopted
    IF EXISTS (SELECT 1 FROM "public"."user_achievement" AS x WHERE x."user_id" = $1) OR EXISTS (SELECT 1 FROM "public"."user_bot" AS x WHERE x."user_id" = $1) OR EXISTS (SELECT 1 FROM "public"."user_config" AS x WHERE x."user_id" = $1) OR EXISTS (SELECT 1 FROM "public"."user_preference" AS x WHERE x."user_id" = $1) OR EXISTS (SELECT 1 FROM "public"."user_selected_bot" AS x WHERE x."user_id" = $1) OR EXISTS (SELECT 1 FROM "public"."user_statistic" AS x WHERE x."user_id" = $1) THEN
        RETURN false;
    END IF;
    BEGIN
        UPDATE "public"."user" AS s SET "migrated" = true WHERE s."id" = $1;
        PERFORM decant."user_write"($1, true, $2, NULL);
        SELECT s."data" INTO _decant_residual FROM "public"."user" AS s WHERE s."id" = $1;
        IF decant."user_rebuild"($1, _decant_residual)::text IS DISTINCT FROM $2::text THEN
            RAISE EXCEPTION 'its rows and residual do not rebuild its blob';
        END IF;
    -- the caller retries these, as any write of its own
    EXCEPTION WHEN serialization_failure OR deadlock_detected OR lock_not_available THEN
        RAISE;
    WHEN OTHERS THEN
        RAISE WARNING 'decant: user % was not migrated on demand: %; it stays legacy for the daemon', $1, SQLERRM;
        RETURN false;
    END;
    INSERT INTO decant.user_state AS st (user_id, state, attempts, warnings, fixups, fingerprint, migrated_at, updated_at) VALUES ($1, 'migrated', 0, NULL, NULL, '12efabcfbeadb66eba4104d233690750', now(), now()) ON CONFLICT (user_id) DO UPDATE SET state = 'migrated', warnings = NULL, fixups = NULL, fingerprint = EXCLUDED.fingerprint, reason = NULL, last_error = NULL, migrated_at = now(), updated_at = now();
    RETURN true;
END
$$;

-- init statement 65
CREATE OR REPLACE FUNCTION decant.load(bigint) RETURNS jsonb
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp STABLE AS
$$
#variable_conflict use_column
DECLARE _decant_blob jsonb; _decant_migrated boolean;
BEGIN
    SELECT s."data", s."migrated" INTO _decant_blob, _decant_migrated FROM "public"."user" AS s WHERE s."id" = $1;
    IF NOT FOUND THEN
        IF $1 IS NULL THEN
            RAISE EXCEPTION 'decant: a NULL user id' USING ERRCODE = 'null_value_not_allowed', HINT = 'pass the user''s id';
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('decant: user %s does not exist', $1), HINT = 'check the id; load_many leaves unknown users out';
    END IF;
    IF _decant_migrated THEN
        RETURN decant."user_rebuild"($1, _decant_blob);
    END IF;
    RETURN _decant_blob;
END
$$;

-- init statement 66
CREATE OR REPLACE FUNCTION decant.load_many(bigint[]) RETURNS TABLE (id bigint, blob jsonb)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS
$$
SELECT s."id"::bigint, CASE WHEN s."migrated" THEN decant."user_rebuild"(s."id", s."data") ELSE s."data" END
  FROM "public"."user" AS s WHERE s."id" = ANY ($1) ORDER BY s."id"
$$;

-- init statement 67
CREATE OR REPLACE FUNCTION decant.save(bigint, jsonb) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET lock_timeout = '2000ms' AS
$$
#variable_conflict use_column
DECLARE _decant_blob jsonb; _decant_migrated boolean; _decant_on_demand boolean;
BEGIN
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'decant: save of user % with a NULL blob', $1 USING ERRCODE = 'null_value_not_allowed', HINT = 'pass ''null''::jsonb for a JSON null';
    END IF;
    SELECT s."migrated", coalesce(NOT s."migrated" AND decant.in_rollout(s."id") AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND (st.state = 'held' OR (st.state = 'failed' AND st.attempts >= 5))) AND NOT (SELECT c.finalized OR c.paused FROM decant.control AS c), false) INTO _decant_migrated, _decant_on_demand FROM "public"."user" AS s WHERE s."id" = $1 FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        IF $1 IS NULL THEN
            RAISE EXCEPTION 'decant: a NULL user id' USING ERRCODE = 'null_value_not_allowed', HINT = 'pass the user''s id';
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('decant: user %s does not exist', $1), HINT = 'check the id; load_many leaves unknown users out';
    END IF;
    IF _decant_on_demand THEN
        SELECT coalesce(NOT s."migrated" AND decant.in_rollout(s."id") AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND (st.state = 'held' OR (st.state = 'failed' AND st.attempts >= 5))) AND NOT (SELECT c.finalized OR c.paused FROM decant.control AS c), false) INTO _decant_on_demand FROM "public"."user" AS s WHERE s."id" = $1;
    END IF;
    IF _decant_on_demand THEN
        SELECT s."data" INTO _decant_blob FROM "public"."user" AS s WHERE s."id" = $1;
        _decant_migrated := decant."user_migrate"($1, _decant_blob);
    END IF;
    PERFORM decant."user_write"($1, _decant_migrated, $2, NULL);
END
$$;

-- init statement 68
CREATE OR REPLACE FUNCTION decant.patch(bigint, jsonb) RETURNS jsonb
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET lock_timeout = '2000ms' AS
$$
#variable_conflict use_column
DECLARE _decant_blob jsonb; _decant_before jsonb; _decant_migrated boolean; _decant_on_demand boolean;
BEGIN
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'decant: patch of user % with a NULL patch', $1 USING ERRCODE = 'null_value_not_allowed', HINT = 'pass ''null''::jsonb to replace the blob by a JSON null';
    END IF;
    SELECT s."data", s."migrated", coalesce(NOT s."migrated" AND decant.in_rollout(s."id") AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND (st.state = 'held' OR (st.state = 'failed' AND st.attempts >= 5))) AND NOT (SELECT c.finalized OR c.paused FROM decant.control AS c), false) INTO _decant_blob, _decant_migrated, _decant_on_demand FROM "public"."user" AS s WHERE s."id" = $1 FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        IF $1 IS NULL THEN
            RAISE EXCEPTION 'decant: a NULL user id' USING ERRCODE = 'null_value_not_allowed', HINT = 'pass the user''s id';
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('decant: user %s does not exist', $1), HINT = 'check the id; load_many leaves unknown users out';
    END IF;
    IF _decant_on_demand THEN
        SELECT coalesce(NOT s."migrated" AND decant.in_rollout(s."id") AND NOT EXISTS (SELECT 1 FROM decant.user_state st WHERE st.user_id = s."id" AND (st.state = 'held' OR (st.state = 'failed' AND st.attempts >= 5))) AND NOT (SELECT c.finalized OR c.paused FROM decant.control AS c), false) INTO _decant_on_demand FROM "public"."user" AS s WHERE s."id" = $1;
    END IF;
    IF _decant_on_demand THEN
        _decant_migrated := decant."user_migrate"($1, _decant_blob);
    END IF;
    -- (a user just migrated on demand: its rows and residual
    -- were checked to rebuild the blob in hand)
    IF _decant_migrated AND NOT _decant_on_demand THEN
        _decant_blob := decant."user_rebuild"($1, _decant_blob);
    END IF;
    _decant_before := _decant_blob;
    _decant_blob := decant.merge_patch(_decant_blob, $2);
    -- a legacy blob the patch leaves as it was (the same text, not
    -- only an equal value: 1.0 = 1) is not rewritten
    IF NOT _decant_migrated AND _decant_blob = _decant_before AND _decant_blob::text = _decant_before::text THEN
        RETURN _decant_blob;
    END IF;
    -- an object patch changes only the paths it holds
    PERFORM decant."user_write"($1, _decant_migrated, _decant_blob, CASE WHEN jsonb_typeof($2) = 'object' AND jsonb_typeof(_decant_blob) = 'object' THEN decant.patch_paths($2) END);
    RETURN _decant_blob;
END
$$;

