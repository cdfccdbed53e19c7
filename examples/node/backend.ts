// A Node/TypeScript game backend on decant's SQL API, mid-migration.
//
// The backend never asks whether a user is migrated to read or to patch:
// decant.load / decant.load_many / decant.patch / decant.save answer the
// same whatever the user's state. Code written for the new tables takes
// the migration-compatible transaction: the user's `migrated` flag read
// under the row lock picks the old (blob) or the new (tables) code path,
// so decant's daemon can never migrate the user in between.
//
// Run it (after `decant init`, with users half migrated):
//   npm ci && DATABASE_URL=postgres://... npm start
// It runs a scripted scenario against the example game, checks every
// answer, and exits non-zero on the first wrong one.

import pg from "pg";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Blob = { [key: string]: Json };

// node-postgres reads PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD when
// no connection string is given.
const pool = new pg.Pool(
  process.env.DATABASE_URL ? { connectionString: process.env.DATABASE_URL } : {},
);

// jsonb arrives parsed; numeric columns arrive as strings (exact).
type Queryable = pg.Pool | pg.PoolClient;

/** The user's whole blob whatever its state: no lock, fine on a replica. */
export async function loadUser(db: Queryable, id: number): Promise<Blob> {
  const r = await db.query<{ blob: Blob }>("SELECT decant.load($1) AS blob", [id]);
  return r.rows[0].blob;
}

/** Many users from one snapshot; unknown ids are left out. */
export async function loadUsers(db: Queryable, ids: number[]): Promise<Map<number, Blob>> {
  const r = await db.query<{ id: string; blob: Blob }>(
    "SELECT id, blob FROM decant.load_many($1::bigint[])",
    [ids],
  );
  return new Map(r.rows.map((row) => [Number(row.id), row.blob]));
}

/** Runs `body` in one transaction: committed on success, rolled back on error. */
async function transaction<T>(body: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const out = await body(client);
    await client.query("COMMIT");
    return out;
  } catch (e) {
    await client.query("ROLLBACK").catch(() => {});
    throw e;
  } finally {
    client.release();
  }
}

/**
 * What an old client sends: an RFC 7396 merge patch of the whole blob, in
 * the backend's own transaction (here with an audit row written alongside).
 * decant.patch locks the user's row first; for a migrated user it writes
 * only the rows that changed, and keeps invalid values in the residual.
 */
export async function patchUser(id: number, patch: Blob): Promise<Blob> {
  return transaction(async (c) => {
    const r = await c.query<{ blob: Blob }>("SELECT decant.patch($1, $2::jsonb) AS blob", [
      id,
      JSON.stringify(patch),
    ]);
    await c.query("INSERT INTO audit (user_id, patch) VALUES ($1, $2::jsonb)", [
      id,
      JSON.stringify(patch),
    ]);
    return r.rows[0].blob;
  });
}

/**
 * The migration-compatible transaction: the flag read under the row lock
 * picks the code path; the lock holds until commit.
 */
export async function withUser<T>(
  id: number,
  oldPath: (c: pg.PoolClient) => Promise<T>,
  newPath: (c: pg.PoolClient) => Promise<T>,
): Promise<T> {
  return transaction(async (c) => {
    const r = await c.query<{ migrated: boolean }>(
      'SELECT migrated FROM "user" WHERE id = $1 FOR NO KEY UPDATE',
      [id],
    );
    if (r.rowCount === 0) throw new Error(`user ${id} does not exist`);
    return r.rows[0].migrated ? newPath(c) : oldPath(c);
  });
}

/** A game result: `points` more in `mode`, written where the user lives. */
export async function addPoints(id: number, mode: string, points: number): Promise<"old" | "new"> {
  return withUser(
    id,
    async (c) => {
      // old code: edit the blob (the row is locked: read, change, write)
      const r = await c.query<{ data: Blob }>('SELECT data FROM "user" WHERE id = $1', [id]);
      const data = r.rows[0].data;
      const marriage = ((data.marriage ??= {}) as Blob);
      const stats = ((marriage.stats ??= {}) as Blob);
      const m = ((stats[mode] ??= {}) as Blob);
      m.points = Number(m.points ?? 0) + points;
      await c.query('UPDATE "user" SET data = $2::jsonb WHERE id = $1', [id, JSON.stringify(data)]);
      return "old" as const;
    },
    async (c) => {
      // new code: one row of the normalized table
      await c.query(
        `INSERT INTO user_statistic (user_id, mode, statistic_id, value)
         VALUES ($1, $2, 'points', $3)
         ON CONFLICT (user_id, mode, statistic_id)
         DO UPDATE SET value = user_statistic.value + EXCLUDED.value`,
        [id, mode, points],
      );
      return "new" as const;
    },
  );
}

/** The top players by kidnap points, legacy and migrated users merged. */
export async function leaderboard(n: number): Promise<{ user: number; points: number }[]> {
  const r = await pool.query<{ user_id: string; value: string }>(
    "SELECT user_id, value FROM kidnap_points_top($1)",
    [n],
  );
  return r.rows.map((row) => ({ user: Number(row.user_id), points: Number(row.value) }));
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok  ${what}`);
}

function kidnapPoints(blob: Blob): number {
  const stats = (blob.marriage as Blob | undefined)?.stats as Blob | undefined;
  const kidnap = stats?.kidnap as Blob | undefined;
  return Number(kidnap?.points ?? 0);
}

async function main(): Promise<void> {
  // made here only when missing: CREATE ... IF NOT EXISTS needs CREATE on
  // the schema even when the table is there, which a backend role granted
  // INSERT on a table made for it lacks (PostgreSQL 15 gives none on public)
  const audit = await pool.query<{ there: boolean }>(
    "SELECT to_regclass('audit') IS NOT NULL AS there",
  );
  if (!audit.rows[0].there) {
    await pool.query(
      "CREATE TABLE audit (user_id bigint NOT NULL, patch jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now())",
    );
  }
  const pick = async (migrated: boolean): Promise<number> => {
    const r = await pool.query<{ id: string }>(
      'SELECT id FROM "user" WHERE migrated = $1 ORDER BY id LIMIT 1',
      [migrated],
    );
    if (r.rowCount === 0) throw new Error(`no ${migrated ? "migrated" : "legacy"} user: migrate some first`);
    return Number(r.rows[0].id);
  };
  const users = { legacy: await pick(false), migrated: await pick(true) };

  for (const [state, id] of Object.entries(users)) {
    const before = kidnapPoints(await loadUser(pool, id));
    const path = await addPoints(id, "kidnap", 7);
    check(path === (state === "migrated" ? "new" : "old"), `${state} user ${id} took the ${path} code path`);
    const after = await loadUser(pool, id);
    check(kidnapPoints(after) === before + 7, `${state} user ${id}: kidnap points ${before} -> ${before + 7}`);

    const patched = await patchUser(id, { pref: { fromNode: true, theme: null }, bots: { bot_99: { level: "max" } } });
    const loaded = await loadUser(pool, id);
    check(JSON.stringify(patched) === JSON.stringify(loaded), `${state} user ${id}: patch returns what load reads`);
    const pref = loaded.pref as Blob;
    check(pref.fromNode === true && !("theme" in pref), `${state} user ${id}: merge patch set a key and removed one`);
    const bot = (loaded.bots as Blob).bot_99 as Blob;
    check(bot.level === "max", `${state} user ${id}: an invalid level is kept, not refused`);
  }

  const many = await loadUsers(pool, [users.legacy, users.migrated, 987654321]);
  check(many.size === 2 && many.has(users.legacy) && many.has(users.migrated), "load_many leaves unknown users out");

  // reads need no lock and no write: they run in a READ ONLY transaction
  const readOnly = await pool.connect();
  try {
    await readOnly.query("BEGIN READ ONLY");
    const blob = await loadUser(readOnly, users.migrated);
    await readOnly.query("COMMIT");
    check(kidnapPoints(blob) === kidnapPoints(many.get(users.migrated)!), "decant.load works in a READ ONLY transaction");
  } finally {
    readOnly.release();
  }

  const top = await leaderboard(5);
  check(top.length === 5, "kidnap_points_top(5) gives five players");
  check(
    top.every((row, i) => i === 0 || top[i - 1].points > row.points || (top[i - 1].points === row.points && top[i - 1].user < row.user)),
    "the leaderboard is ordered (points, then user id)",
  );
  console.log(JSON.stringify({ users, top }));
  console.log("all checks passed");
}

main()
  .catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  })
  .finally(() => pool.end());
