-- decant.merge_patch (the SQL API's RFC 7396 merge) against the one
-- before 2026-12-07 (jsonb_object_agg over both objects' keys), copied
-- here as mp_bench.before. Run on a database where `decant init` ran:
--   psql -X -d DB -f benches/merge_patch.sql
-- Each line is 50 calls (psql \timing); the last three say whether both
-- give the same result.
DROP SCHEMA IF EXISTS mp_bench CASCADE; CREATE SCHEMA mp_bench;
CREATE OR REPLACE FUNCTION mp_bench.before(target jsonb, patch jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$
BEGIN
    IF patch IS NULL OR jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    IF target IS NULL OR jsonb_typeof(target) <> 'object' THEN
        target := '{}';
    END IF;
    RETURN coalesce((
        SELECT jsonb_object_agg(
                   coalesce(p.key, t.key),
                   CASE WHEN p.key IS NULL THEN t.value
                        WHEN jsonb_typeof(p.value) <> 'object' THEN p.value
                        ELSE mp_bench.before(t.value, p.value) END)
          FROM jsonb_each(target) AS t FULL JOIN jsonb_each(patch) AS p ON p.key = t.key
         WHERE p.key IS NULL OR jsonb_typeof(p.value) <> 'null'
    ), '{}');
END
$$;
CREATE TABLE mp_bench.b AS SELECT jsonb_build_object('big', (SELECT jsonb_object_agg('k'||g, repeat('x',100)) FROM generate_series(1,4000) g),
   'stats', (SELECT jsonb_object_agg('s'||g, g) FROM generate_series(1,200) g), 'name', 'bob', 'arr', '[1,2,3]'::jsonb) AS v;
\timing on
-- small patch to a heavy blob (nested key), 50 times
SELECT count(mp_bench.before(v, '{"stats":{"s1":5}}')) FROM mp_bench.b, generate_series(1,50);
SELECT count(decant.merge_patch(v, '{"stats":{"s1":5}}')) FROM mp_bench.b, generate_series(1,50);
-- flat patch to heavy blob
SELECT count(mp_bench.before(v, '{"name":"al"}')) FROM mp_bench.b, generate_series(1,50);
SELECT count(decant.merge_patch(v, '{"name":"al"}')) FROM mp_bench.b, generate_series(1,50);
-- a patch of one 4,000-key object onto {} (once)
SELECT length(mp_bench.before('{}', (SELECT jsonb_build_object('big', jsonb_object_agg('k'||g, repeat('y',100))) FROM generate_series(1,4000) g))::text);
SELECT length(decant.merge_patch('{}', (SELECT jsonb_build_object('big', jsonb_object_agg('k'||g, repeat('y',100))) FROM generate_series(1,4000) g))::text);
-- equality checks
SELECT mp_bench.before(v, p) = decant.merge_patch(v, p) FROM mp_bench.b, (VALUES ('{"stats":{"s1":null,"s2":{"a":1}},"name":null,"arr":{"x":[1]},"new":{"q":{"r":null,"s":2}},"big":{}}'::jsonb), ('{}'), ('{"a":null}')) AS x(p);
DROP SCHEMA mp_bench CASCADE;
