//! The mapping recorded at `init` (`decant.control.spec_fingerprint` and
//! its lines) against the spec a command runs with: commands that read or
//! write migrated users refuse a spec whose mapping differs, naming the
//! difference, instead of rebuilding a different blob.

use crate::core::spec::Spec;
use crate::core::spec::identity::{difference, only_new_tables};
use crate::error::{Error, Result};
use crate::pg::sql::source_table;
use tokio_postgres::GenericClient;

/// Whether `decant init` ran on this database (`decant.control` exists).
pub(crate) async fn initialized(client: &impl GenericClient) -> Result<bool> {
    Ok(client
        .query_one("SELECT to_regclass('decant.control') IS NOT NULL", &[])
        .await
        .map_err(|e| Error::db("looking for decant.control", e))?
        .get(0))
}

/// The recorded fingerprint and mapping lines, if `init` recorded them.
async fn recorded(client: &impl GenericClient) -> Result<Option<(String, Vec<String>)>> {
    if !initialized(client).await? {
        return Ok(None);
    }
    let has_columns: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'decant.control'::regclass \
               AND attname = 'spec_fingerprint' AND NOT attisdropped)",
            &[],
        )
        .await
        .map_err(|e| Error::db("reading decant.control's columns", e))?
        .get(0);
    if !has_columns {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT spec_fingerprint, spec_mapping FROM decant.control WHERE spec_fingerprint IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| Error::db("reading the recorded mapping", e))?;
    Ok(row.map(|r| {
        let lines: String = r.get(1);
        (r.get(0), lines.lines().map(str::to_string).collect())
    }))
}

async fn migrated_users(client: &impl GenericClient, spec: &Spec) -> Result<i64> {
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&source_table(spec)])
        .await
        .map_err(|e| Error::db("looking for the source table", e))?
        .get(0);
    if !exists {
        return Err(crate::pg::sql::no_source(spec));
    }
    // once finalized the flag column may be gone: every user is migrated
    let sql = format!(
        "SELECT count(*) FROM {} WHERE {}",
        source_table(spec),
        crate::core::spec::quote(&spec.source.flag)
    );
    let sql = if flag_exists(client, spec).await? {
        sql
    } else {
        // no flag: dropped by `finalize --drop-legacy` (every user is
        // migrated), or the spec names a flag init has not made (another
        // table, or the flag renamed): then the users decant recorded
        // migrated are what depends on the recorded mapping
        let finalized: bool = client
            .query_opt("SELECT finalized FROM decant.control", &[])
            .await
            .map_err(|e| Error::db("reading the phase", e))?
            .is_some_and(|r| r.get(0));
        if !finalized {
            return Ok(client
                .query_one(
                    "SELECT count(*) FROM decant.user_state WHERE state = 'migrated'",
                    &[],
                )
                .await
                .map_err(|e| Error::db("counting migrated users", e))?
                .get(0));
        }
        crate::pg::sql::without_flag(spec, &sql)
    };
    Ok(client
        .query_one(&sql, &[])
        .await
        .map_err(|e| Error::db("counting migrated users", e))?
        .get(0))
}

/// The spec text `init` recorded, if any (a database initialized by an
/// older decant has none).
pub async fn recorded_spec(client: &impl GenericClient) -> Result<Option<Spec>> {
    let row = client
        .query_opt(
            "SELECT spec_text FROM decant.control WHERE spec_text IS NOT NULL AND spec_text <> ''",
            &[],
        )
        .await
        .map_err(|e| Error::db_own("reading the recorded spec", e))?;
    row.map(|r| {
        let text: String = r.get(0);
        Spec::parse_named(&text, std::path::Path::new("<recorded by init>")).map_err(Error::from)
    })
    .transpose()
}

/// Whether the source table has the flag column (`finalize --drop-legacy`
/// drops it). A column of that name that is not boolean is an error naming
/// it: the spec's flag is another column of the team's.
pub async fn flag_exists(client: &impl GenericClient, spec: &Spec) -> Result<bool> {
    let row = client
        .query_opt(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
              WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped",
            &[&source_table(spec), &spec.source.flag],
        )
        .await
        .map_err(|e| Error::db("looking for the flag column", e))?;
    match row.map(|r| r.get::<_, String>(0)) {
        None => Ok(false),
        Some(t) if t == "boolean" => Ok(true),
        Some(t) => Err(Error::Setup(format!(
            "source column \"{}\" is {t}; decant needs boolean for the flag \
             (source.flag): name a column the table does not have, which \
             `decant init` adds",
            spec.source.flag
        ))),
    }
}

/// The source table of the recorded mapping when it is not the spec's
/// (`schema.table`, as the mapping writes it): decant serves one source
/// table per database (its state, control row and SQL API live in schema
/// `decant`). With `only_if_used`, only while decant holds state of that
/// table's users (else nothing depends on it, and init may move).
pub(crate) async fn other_source(
    client: &impl GenericClient,
    spec: &Spec,
    only_if_used: bool,
) -> Result<Option<String>> {
    let Some((_, lines)) = recorded(client).await? else {
        return Ok(None);
    };
    let Some(other) = other_source_in(&lines, spec) else {
        return Ok(None);
    };
    if !only_if_used {
        return Ok(Some(other));
    }
    // while decant holds no state of its users (migrated, held, failed
    // or released), nothing depends on it
    let depends: bool = client
        .query_one("SELECT EXISTS (SELECT 1 FROM decant.user_state)", &[])
        .await
        .map_err(|e| Error::db("reading decant.user_state", e))?
        .get(0);
    Ok(depends.then_some(other))
}

fn other_source_in(lines: &[String], spec: &Spec) -> Option<String> {
    let recorded = lines.iter().find(|l| l.starts_with("source "))?;
    let ours = format!("source {}.{} id=", spec.source.schema, spec.source.table);
    if recorded.starts_with(&ours) {
        return None;
    }
    // the recorded `schema.table`, up to its ` id=` (not to the first
    // space: the names may hold spaces)
    let theirs = &recorded["source ".len()..];
    Some(
        theirs
            .find(" id=")
            .map_or(theirs, |i| &theirs[..i])
            .to_string(),
    )
}

/// The refusal of a spec whose source table is not the one `init`
/// recorded in this database.
/// Refuses a spec of another source table than the one `init` recorded
/// ([`one_source_per_database`]): the calls that need no mapping (release,
/// retry) failed on the other table's id type or name with the server's
/// error.
pub(crate) async fn require_same_source(client: &impl GenericClient, spec: &Spec) -> Result<()> {
    match other_source(client, spec, false).await? {
        Some(other) => Err(one_source_per_database(&other, spec)),
        None => Ok(()),
    }
}

pub(crate) fn one_source_per_database(recorded: &str, spec: &Spec) -> Error {
    Error::SpecMismatch {
        detail: format!(
            "decant in this database serves the source table {recorded} (recorded by `decant init`), \
             not the spec's {}: decant migrates one source table per database (its state, control \
             row and SQL API live in schema decant). Use the spec of {recorded}, or migrate {} from a \
             database of its own (or, once nothing of {recorded}'s migration is needed, roll its \
             users back and drop schema decant)",
            source_table(spec),
            source_table(spec)
        ),
    }
}

/// A mapping line as the spec writes it: a column's type by its spec name
/// (`int4`), not the identity's (`Int4`, kept as fingerprints have it).
fn shown(line: &str) -> String {
    if line.starts_with("table ") && line.contains(" column ") {
        if let Some((head, ty)) = line.rsplit_once(' ') {
            if let Some(name) = crate::core::value::ColumnType::spec_name_of(ty) {
                return format!("{head} {name}");
            }
        }
    }
    line.to_string()
}

fn describe(gone: &[String], added: &[String]) -> String {
    let mut parts = Vec::new();
    for l in gone.iter().take(5) {
        parts.push(format!("recorded `{}` is not in the spec", shown(l)));
    }
    for l in added.iter().take(5) {
        parts.push(format!("the spec's `{}` was not recorded", shown(l)));
    }
    let more = gone.len() + added.len() - parts.len();
    if more > 0 {
        parts.push(format!("and {more} more"));
    }
    parts.join("; ")
}

/// Refuses a database whose SQL objects are not this decant's for `spec`:
/// its reader function (see [`crate::pg::sql::reader`]) is missing when
/// `init` ran with another version of decant, whose residuals and SQL API
/// may have another form. Run `init` (idempotent) with this version.
pub(crate) async fn require_reader(client: &impl GenericClient, spec: &Spec) -> Result<()> {
    let Some((name, _)) = crate::pg::sql::reader(spec) else {
        return Ok(());
    };
    require_init(client).await?;
    let reader = format!("{name}({})", spec.source.id_type.sql());
    let present: bool = client
        .query_one("SELECT to_regprocedure($1) IS NOT NULL", &[&reader])
        .await
        .map_err(|e| Error::db_own("looking up decant's reader function", e))?
        .get(0);
    if present {
        return Ok(());
    }
    Err(Error::Setup(format!(
        "the database lacks {reader}, the function this version of decant reads \
         migrated users' rows with (`init` ran with another version, whose SQL \
         API and views may rebuild users differently): run `decant init` \
         (idempotent) with this version and spec"
    )))
}

/// Refuses a database `decant init` never set up (no `decant.control`
/// or `decant.user_state`), saying so: each command would otherwise fail
/// on its first statement with a missing relation, or name a version
/// mismatch where there is no installation at all.
pub async fn require_init(client: &impl GenericClient) -> Result<()> {
    let ready: bool = client
        .query_one(
            "SELECT to_regclass('decant.control') IS NOT NULL \
               AND to_regclass('decant.user_state') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| Error::db_own("looking for decant's schema", e))?
        .get(0);
    if ready {
        return Ok(());
    }
    Err(Error::Setup(
        "decant is not set up in this database (no decant.control or decant.user_state): \
         run `decant init --spec <file>` first (`decant check` runs without it)"
            .into(),
    ))
}

/// Refuses `spec` when its mapping differs from the recorded one. With
/// `lenient`, a difference is accepted while no user is migrated (nothing
/// depends on the mapping yet).
pub(crate) async fn verify(client: &impl GenericClient, spec: &Spec, lenient: bool) -> Result<()> {
    let Some((fingerprint, lines)) = recorded(client).await? else {
        return Ok(());
    };
    if fingerprint == spec.fingerprint() {
        return Ok(());
    }
    if let Some(other) = other_source(client, spec, true).await? {
        return Err(one_source_per_database(&other, spec));
    }
    let migrated = migrated_users(client, spec).await?;
    if lenient && migrated == 0 {
        return Ok(());
    }
    let (gone, added) = difference(&lines, &spec.mapping_lines());
    let detail = if migrated == 0 {
        // nothing depends on the recorded mapping: no rollback to advise
        format!(
            "the spec's mapping differs from the one recorded by `decant init`: {}. \
             No user is migrated yet, so `decant init` with this spec records it (and makes its \
             tables); or use the spec `init` recorded",
            describe(&gone, &added)
        )
    } else {
        format!(
            "the spec's mapping differs from the one recorded by `decant init` ({} migrated with it): {}. \
             Use the spec that migrated them; to add tables and rules run `decant init --evolve` then `decant run --evolve`; \
             to change or remove a mapping, roll its users back first (`decant rollback --all`)",
            crate::core::users(migrated),
            describe(&gone, &added)
        )
    };
    Err(Error::SpecMismatch { detail })
}

/// Before `init` changes anything: whether `spec` may be recorded. The
/// same mapping, or any while no user is migrated; with `evolve`, one
/// that only adds tables and rules into them.
pub(crate) async fn check_init(
    client: &impl GenericClient,
    spec: &Spec,
    evolve: bool,
) -> Result<()> {
    let Some((fingerprint, lines)) = recorded(client).await? else {
        return Ok(());
    };
    if fingerprint == spec.fingerprint() {
        return Ok(());
    }
    if let Some(other) = other_source(client, spec, true).await? {
        return Err(one_source_per_database(&other, spec));
    }
    let migrated = migrated_users(client, spec).await?;
    if migrated == 0 {
        return Ok(());
    }
    let (gone, added) = difference(&lines, &spec.mapping_lines());
    if evolve {
        if !gone.is_empty() {
            return Err(Error::SpecMismatch {
                detail: format!(
                    "an evolution may only add tables and rules into them, but {}; roll the users back first",
                    describe(&gone, &[])
                ),
            });
        }
        return only_new_tables(&lines, &added).map_err(|detail| Error::SpecMismatch { detail });
    }
    verify(client, spec, false).await
}

/// Records `spec`'s mapping (after `init` applied it).
pub(crate) async fn record(client: &impl GenericClient, spec: &Spec) -> Result<()> {
    client
        .execute(
            "UPDATE decant.control SET spec_fingerprint = $1, spec_mapping = $2, spec_text = $3, \
               updated_at = now()",
            &[
                &spec.fingerprint(),
                &spec.mapping_lines().join("\n"),
                &spec.text.as_ref(),
            ],
        )
        .await
        .map_err(|e| Error::db("recording the mapping", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_names_types_as_the_spec_writes_them() {
        // it said "`table profile_item column qty Int4`"
        let d = describe(
            &[
                "table item column qty Int4".into(),
                "rule a -> table item value=qty".into(),
            ],
            &[
                "table item column qty Int8".into(),
                "table item column at TimestampIsoMs".into(),
                "table item column at2 timestamptz_iso_us_offset".into(),
            ],
        );
        assert!(d.contains("recorded `table item column qty int4`"), "{d}");
        assert!(d.contains("the spec's `table item column qty int8`"), "{d}");
        assert!(
            d.contains("`table item column at timestamptz_iso_ms`"),
            "{d}"
        );
        assert!(
            d.contains("`table item column at2 timestamptz_iso_us_offset`"),
            "{d}"
        );
        assert!(
            d.contains("recorded `rule a -> table item value=qty`"),
            "{d}"
        );
    }

    /// Names with spaces: two source tables that share their first word
    /// are two tables, and the recorded one is named whole.
    #[test]
    fn another_source_is_told_apart_and_named_whole() {
        let spec = |table: &str| {
            Spec::parse(&format!(
                "[source]\nschema = \"my app\"\ntable = \"{table}\"\n\
                 [tables.t.columns]\nv = \"int8\"\n\
                 [[rules]]\nname = \"r\"\npath = \"xp\"\ntable = \"t\"\nvalue = \"v\"\n"
            ))
            .unwrap()
        };
        let recorded = spec("the users").mapping_lines();
        assert_eq!(other_source_in(&recorded, &spec("the users")), None);
        assert_eq!(
            other_source_in(&recorded, &spec("the others")).as_deref(),
            Some("my app.the users")
        );
        assert_eq!(
            other_source_in(&recorded, &spec("the")).as_deref(),
            Some("my app.the users")
        );
    }
}
