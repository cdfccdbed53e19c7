//! `decant grants ROLE`: exactly what a backend role needs to use the
//! library (or the SQL API) on a database `decant init` prepared: read and
//! write its users in either state, migrate them on demand, read the
//! cross-user views. Nothing more: no DDL, no right on decant's control
//! row beyond reading it.

use crate::core::spec::{Spec, quote};
use crate::error::{Error, Result};
use crate::pg::sql::{source_table, target_table};

/// The GRANT statements for `role` (any role name; quoted), in order.
pub fn grants(spec: &Spec, role: &str) -> Result<Vec<String>> {
    if role.is_empty() || role.len() > 63 || role.contains('\0') {
        return Err(Error::Setup(format!(
            "role {role:?}: give a role name of 1 to 63 bytes"
        )));
    }
    let r = quote(role);
    let mut schemas = vec![
        spec.source.schema.clone(),
        spec.settings.target_schema.clone(),
        spec.settings.views_schema.clone(),
    ];
    schemas.sort();
    schemas.dedup();
    let mut out = vec![
        // decant's schema: the control row and the per-user states (on-demand
        // migration records its users), the reader and API functions
        format!("GRANT USAGE ON SCHEMA decant TO {r}"),
        format!("GRANT SELECT ON decant.control TO {r}"),
        format!("GRANT SELECT, INSERT, UPDATE ON decant.user_state TO {r}"),
        format!("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA decant TO {r}"),
    ];
    for s in &schemas {
        out.push(format!("GRANT USAGE ON SCHEMA {} TO {r}", quote(s)));
    }
    // the source: read a user under its row lock, write the blob and the flag
    out.push(format!(
        "GRANT SELECT, UPDATE ON {} TO {r}",
        source_table(spec)
    ));
    // the tables: a migrated user's rows change with each write
    for ti in 0..spec.tables.len() {
        out.push(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {r}",
            target_table(spec, ti)
        ));
        out.push(format!(
            "GRANT SELECT ON {} TO {r}",
            crate::pg::views::view_name(spec, ti)
        ));
    }
    for rk in &spec.ranked {
        out.push(format!(
            "GRANT EXECUTE ON FUNCTION {}(integer) TO {r}",
            crate::pg::views::top_fn(spec, rk)
        ));
    }
    Ok(out)
}

/// [`grants`] as a script, one statement per line.
pub fn grants_script(spec: &Spec, role: &str) -> Result<String> {
    Ok(grants(spec, role)?
        .iter()
        .map(|g| format!("{g};\n"))
        .collect())
}

/// Applies [`grants`] in one transaction.
pub async fn apply_grants(client: &tokio_postgres::Client, spec: &Spec, role: &str) -> Result<()> {
    let script = format!("BEGIN;\n{}COMMIT;", grants_script(spec, role)?);
    if let Err(e) = client.batch_execute(&script).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(Error::db(
            format!("granting {role:?} what the library needs"),
            e,
        ));
    }
    Ok(())
}

/// The roles granted decant's rights before (they read `decant.control`)
/// that lack a right on one of the spec's tables or views: a spec that
/// added tables (`decant init --evolve`) needs `decant grants` again for
/// each, or their calls on migrated users fail with "permission denied".
/// Superusers and PostgreSQL's own roles are left out.
pub async fn roles_missing_grants(
    client: &tokio_postgres::Client,
    spec: &Spec,
) -> Result<Vec<String>> {
    let mut tables = Vec::new();
    let mut views = Vec::new();
    for ti in 0..spec.tables.len() {
        tables.push(target_table(spec, ti));
        views.push(crate::pg::views::view_name(spec, ti));
    }
    let rows = client
        .query(
            "SELECT r.rolname::text FROM pg_roles AS r \
              WHERE NOT r.rolsuper AND r.rolname !~ '^pg_' \
                AND to_regclass('decant.control') IS NOT NULL \
                AND has_table_privilege(r.oid, 'decant.control', 'SELECT') \
                AND (EXISTS (SELECT 1 FROM unnest($1::text[]) AS t \
                              WHERE to_regclass(t) IS NOT NULL \
                                AND NOT has_table_privilege(r.oid, t, 'SELECT, INSERT, UPDATE, DELETE')) \
                  OR EXISTS (SELECT 1 FROM unnest($2::text[]) AS v \
                              WHERE to_regclass(v) IS NOT NULL \
                                AND NOT has_table_privilege(r.oid, v, 'SELECT'))) \
              ORDER BY 1",
            &[&tables, &views],
        )
        .await
        .map_err(|e| Error::db("looking for roles that lack the new tables' grants", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
