//! Flags several commands share, each group one `#[command(flatten)]`
//! struct: where the database and the spec are, and the windows.

use anyhow::{Context, Result};
use clap::Args;
use decant::{Decant, Spec};
use std::path::PathBuf;

/// Where the database and the spec are.
#[derive(Args)]
pub(super) struct Target {
    /// Connection string (URL or key=value); defaults to $DATABASE_URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(super) database_url: Option<String>,
    /// The mapping spec.
    #[arg(long, default_value = "decant.toml")]
    pub(super) spec: PathBuf,
}

impl Target {
    pub(super) fn spec(&self) -> Result<Spec> {
        Ok(Spec::load(&self.spec)?)
    }

    /// The connection string: `--database-url`, `$DATABASE_URL`, or the
    /// libpq variables (`PGSERVICE`, `PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGDATABASE`, `PGSSLMODE`, with `PGPASSWORD` or `~/.pgpass` for the
    /// password).
    pub(super) fn url(&self) -> Result<String> {
        let url = match &self.database_url {
            Some(u) => u.clone(),
            None => match decant::from_environment() {
                Some(u) => u,
                None => super::exit::usage!(
                    "no database: pass --database-url, set DATABASE_URL, or set the libpq \
                     variables (PGSERVICE, or PGHOST, PGPORT, PGUSER, PGDATABASE; PGPASSWORD or ~/.pgpass)"
                ),
            },
        };
        let _ = super::exit::TARGET.set(url.clone());
        Ok(url)
    }

    pub(super) fn decant(&self) -> Result<Decant> {
        Ok(Decant::connect(&self.url()?, self.spec()?, 2)?)
    }

    /// For commands that only report: the spec file when it is there,
    /// else the spec `decant init` recorded in the database.
    pub(super) async fn decant_or_recorded(&self) -> Result<Decant> {
        // a spec named on the command line must be there; the default
        // one may be missing (the recorded one serves)
        if self.spec.exists() || self.spec != std::path::Path::new("decant.toml") {
            return self.decant();
        }
        let url = self.url()?;
        let client = decant::connect(&url).await?;
        match decant::recorded_spec(&client).await? {
            Some(spec) => Ok(Decant::connect(&url, spec, 2)?),
            None => super::exit::usage!(
                "{}: no such file, and the database holds no spec recorded by `decant init` \
                 (pass --spec, or run `decant init` with this version once)",
                self.spec.display()
            ),
        }
    }
}

/// Low-traffic windows.
#[derive(Args)]
pub(super) struct ScheduleArgs {
    /// A daily window HH:MM-HH:MM (several allowed; may cross midnight).
    #[arg(long = "window")]
    windows: Vec<decant::Window>,
    /// Time zone of the windows (IANA name, e.g. Asia/Kathmandu; default UTC).
    #[arg(long)]
    tz: Option<String>,
}

impl ScheduleArgs {
    pub(super) fn schedule(&self) -> Result<decant::Schedule> {
        // a bad --tz is a bad argument (exit status 2), as a bad --window
        decant::Schedule::new(self.windows.clone(), self.tz.as_deref())
            .map_err(|e| crate::cli::exit::Usage(format!("--tz: {e}")).into())
    }
}

/// Says (on stderr) which of the ids read from `file` name no user of the
/// source table: a mistyped or stale list is otherwise taken without a
/// word, the others' work going ahead.
pub(super) async fn warn_missing(
    decant: &Decant,
    ids: &[decant::UserId],
    file: &std::path::Path,
) -> Result<()> {
    let missing = decant.missing_users(ids).await?;
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(10).map(ToString::to_string).collect();
        eprintln!(
            "warning: {} of the {} ids in {} name no user of the table, left alone: {}{}",
            missing.len(),
            ids.len(),
            file.display(),
            shown.join(", "),
            if missing.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// `text` as one word of a shell command: as it is when it is plain,
/// else in single quotes (an empty id, one with spaces or quotes).
pub(super) fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | '@'));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// `--user`'s id in the kind of the spec's id column: a bad argument
/// (exit status 2) when it is not one.
pub(super) fn user_id(kind: decant::IdType, user: &decant::UserId) -> Result<decant::UserId> {
    match kind.coerce(user.clone()) {
        Ok(id) => Ok(id),
        Err(_) => super::exit::usage!(
            "--user {user}: not a user id of the spec's id_type ({})",
            kind.describe()
        ),
    }
}

/// Ids from a file: whitespace or comma separated, `#` to the end of a
/// line a comment, an id holding any of those in double quotes (`"a, b"`;
/// `""` inside for a quote); each read in the kind of the spec's id
/// (`kind`).
pub(super) fn read_ids(
    file: &std::path::Path,
    kind: decant::IdType,
) -> Result<Vec<decant::UserId>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the ids in {}", file.display()))?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let words = match split_ids(line) {
            Ok(w) => w,
            Err(why) => super::exit::usage!("{}:{}: {why}", file.display(), n + 1),
        };
        for word in words {
            match kind.id(&word) {
                Ok(id) => ids.push(id),
                Err(_) => super::exit::usage!(
                    "{}:{}: `{word}` is not a user id of the spec's id_type ({})",
                    file.display(),
                    n + 1,
                    kind.describe()
                ),
            }
        }
    }
    if ids.is_empty() {
        super::exit::usage!("{}: no ids in the file", file.display());
    }
    Ok(ids)
}

/// The ids of one line of an ids file (see [`read_ids`]).
fn split_ids(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut word = String::new();
    let end = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' => break,
            c if c.is_whitespace() || c == ',' => end(&mut word, &mut out),
            '"' if word.is_empty() => {
                let mut quoted = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            quoted.push('"');
                        }
                        Some('"') => break,
                        Some(c) => quoted.push(c),
                        None => return Err(format!("an id's quote is not closed: {line}")),
                    }
                }
                out.push(quoted);
            }
            c => word.push(c),
        }
    }
    end(&mut word, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{shell_word, split_ids};

    #[test]
    fn ids_are_quoted_for_the_shell_when_they_need_it() {
        assert_eq!(shell_word("42"), "42");
        assert_eq!(shell_word("-5"), "-5");
        assert_eq!(
            shell_word("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word(" lead"), "' lead'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn ids_split_on_spaces_and_commas_unless_quoted() {
        assert_eq!(split_ids("1, 2 3 # four").unwrap(), ["1", "2", "3"]);
        assert_eq!(
            split_ids(r#""a,b" "c d" "e#f" "say ""hi""", g"#).unwrap(),
            ["a,b", "c d", "e#f", "say \"hi\"", "g"]
        );
        assert_eq!(split_ids(r#""""#).unwrap(), [""]);
        assert!(split_ids(r#""open"#).is_err());
    }
}
