//! The control row (`decant.control`): pause, rate, batch size and rollout,
//! shared by every worker of every process. Running daemons re-read it about
//! twice a second.

use crate::core::schedule::{Rate, Schedule, Window};
use crate::error::{Error, Result};
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

/// The live settings every daemon obeys.
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    /// Daemons idle while true.
    pub paused: bool,
    /// Users per second or minute for all daemons together (each takes
    /// its share: see `decant.daemon`), or `max`.
    pub rate: Rate,
    /// A fixed batch size (None: adaptive, aiming at the target batch time).
    pub batch_size: Option<u32>,
    /// Percentage of users (by a uniform hash of the id) in the rollout.
    pub rollout_percent: f32,
    /// Users in the rollout whatever the percentage.
    pub allow_list: Vec<crate::core::id::UserId>,
    /// The migration is finalized (`decant finalize`): every user is
    /// migrated; nothing migrates or rolls back any more.
    pub finalized: bool,
    /// The windows (and time zone) of daemons started without `--window`.
    pub schedule: Schedule,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            paused: false,
            rate: Rate::Max,
            batch_size: None,
            rollout_percent: 0.0,
            allow_list: Vec::new(),
            finalized: false,
            schedule: Schedule::default(),
        }
    }
}

/// Reads the control row.
pub async fn read(client: &impl GenericClient) -> Result<Control> {
    let row = client
        .query_one(
            "SELECT paused, rate, batch_size, rollout_percent, allow_list, finalized, windows, tz \
               FROM decant.control",
            &[],
        )
        .await
        .map_err(|e| Error::db_own("reading decant.control", e))?;
    let rate: String = row.get(1);
    Ok(Control {
        paused: row.get(0),
        rate: rate
            .parse()
            .map_err(|e| Error::Setup(format!("decant.control: {e}")))?,
        batch_size: row.get::<_, Option<i32>>(2).map(|b| b.max(1) as u32),
        rollout_percent: row.get(3),
        allow_list: row.get(4),
        finalized: row.get(5),
        schedule: {
            let (windows, tz): (String, String) = (row.get(6), row.get(7));
            let windows = parse_windows(&windows)
                .map_err(|e| Error::Setup(format!("decant.control windows: {e}")))?;
            Schedule::new(windows, Some(&tz))
                .map_err(|e| Error::Setup(format!("decant.control: {e}")))?
        },
    })
}

/// `01:00-05:00,13:00-14:00 Asia/Kathmandu` (a daemon's own windows as
/// status shows them), if it reads.
pub(crate) fn parse_schedule(text: &str) -> Option<Schedule> {
    let (windows, tz) = text.trim().split_once(' ').unwrap_or((text.trim(), "UTC"));
    let windows = parse_windows(windows).ok().filter(|w| !w.is_empty())?;
    Schedule::new(windows, Some(tz.trim())).ok()
}

/// `01:00-05:00,13:00-14:00` (empty or `none`: no windows, always open).
fn parse_windows(text: &str) -> std::result::Result<Vec<Window>, String> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::parse)
        .collect()
}

/// One change to the control row, as `decant set key=value` spells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    /// `paused=true|false` (or `decant pause` / `decant resume`).
    Paused(bool),
    /// `rate=50/s`
    Rate(Rate),
    /// `batch=100` or `batch=auto`
    BatchSize(Option<u32>),
    /// `rollout=10` (percent)
    Rollout(f32),
    /// `allow=1,2,3` (replaces the list; `allow=` empties it)
    AllowList(Vec<crate::core::id::UserId>),
    /// `window=01:00-05:00,13:00-14:00` (`window=none`: always open)
    Windows(Vec<Window>),
    /// `tz=Asia/Kathmandu` (the windows' time zone, an IANA name)
    Tz(String),
}

/// The `key=value` form `decant set` takes.
impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: Vec<String>| v.join(",");
        match self {
            Setting::Paused(p) => write!(f, "paused={p}"),
            Setting::Rate(r) => write!(f, "rate={r}"),
            Setting::BatchSize(None) => write!(f, "batch=auto"),
            Setting::BatchSize(Some(n)) => write!(f, "batch={n}"),
            Setting::Rollout(p) => write!(f, "rollout={p}"),
            Setting::AllowList(ids) => {
                write!(
                    f,
                    "allow={}",
                    list(ids.iter().map(ToString::to_string).collect())
                )
            }
            Setting::Windows(w) if w.is_empty() => write!(f, "window=none"),
            Setting::Windows(w) => {
                write!(
                    f,
                    "window={}",
                    list(w.iter().map(ToString::to_string).collect())
                )
            }
            Setting::Tz(tz) => write!(f, "tz={tz}"),
        }
    }
}

impl std::str::FromStr for Setting {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Setting, String> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected key=value"))?;
        let v = v.trim();
        match k.trim() {
            "paused" => v
                .parse()
                .map(Setting::Paused)
                .map_err(|_| format!("paused=`{v}`: expected true or false")),
            "rate" => v.parse().map(Setting::Rate),
            "batch" | "batch_size" => {
                if v == "auto" {
                    return Ok(Setting::BatchSize(None));
                }
                match v.parse::<u32>() {
                    Ok(n) if (1..=10_000).contains(&n) => Ok(Setting::BatchSize(Some(n))),
                    _ => Err(format!("batch=`{v}`: expected 1..10000 or auto")),
                }
            }
            "rollout" | "rollout_percent" => match v.trim_end_matches('%').parse::<f32>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(Setting::Rollout(p)),
                _ => Err(format!("rollout=`{v}`: expected a percentage 0..100")),
            },
            "allow" | "allow_list" => Ok(Setting::AllowList(
                v.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(crate::core::id::UserId::guess)
                    .collect(),
            )),
            "window" | "windows" => parse_windows(v).map(Setting::Windows),
            "tz" => Schedule::new(Vec::new(), Some(v)).map(|_| Setting::Tz(v.to_string())),
            other => Err(format!(
                "unknown setting `{other}`; known: paused, rate, batch, rollout, allow, window, tz"
            )),
        }
    }
}

/// Applies one change to the control row.
pub async fn set(client: &impl GenericClient, setting: &Setting) -> Result<()> {
    crate::pg::identity::require_init(client).await?;
    let (column, value): (&str, Box<dyn ToSql + Sync + Send>) = match setting {
        Setting::Paused(p) => ("paused", Box::new(*p)),
        Setting::Rate(r) => ("rate", Box::new(r.to_string())),
        Setting::BatchSize(b) => ("batch_size", Box::new(b.map(|b| b as i32))),
        Setting::Rollout(p) => ("rollout_percent", Box::new(*p)),
        Setting::AllowList(l) => ("allow_list", Box::new(allow_ids(client, l).await?)),
        Setting::Windows(w) => (
            "windows",
            Box::new(
                w.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ),
        Setting::Tz(tz) => ("tz", Box::new(tz.clone())),
    };
    // the column is one of the fixed names above, never input. Finalized,
    // no setting does anything any more (nothing migrates): refused
    // rather than shown by status as if it did
    let sql =
        format!("UPDATE decant.control SET {column} = $1, updated_at = now() WHERE NOT finalized");
    let n = client
        .execute(&sql, &[value.as_ref() as &(dyn ToSql + Sync)])
        .await
        .map_err(|e| Error::db_own(format!("setting {column}"), e))?;
    if n != 1 {
        if read(client).await.is_ok_and(|c| c.finalized) {
            return Err(Error::finalized());
        }
        return Err(Error::Setup(
            "decant.control has no row; run `decant init`".into(),
        ));
    }
    tracing::info!(setting = %setting, "control row changed");
    Ok(())
}

/// The type of `relation`'s `column` as `format_type` spells it (`uuid[]`,
/// `bigint`), if both exist.
pub(crate) async fn column_type(
    client: &impl GenericClient,
    relation: &str,
    column: &str,
) -> Result<Option<String>> {
    Ok(client
        .query_opt(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
              WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped",
            &[&relation, &column],
        )
        .await
        .map_err(|e| Error::db(format!("reading the type of {relation}.{column}"), e))?
        .map(|r| r.get(0)))
}

/// `ids` in the kind of the allow list's column (the source's ids, as
/// init made it): a setting is written without a spec, so `1` may be read
/// as a number where the ids are text, or name no uuid.
async fn allow_ids(
    client: &impl GenericClient,
    ids: &[crate::core::id::UserId],
) -> Result<Vec<crate::core::id::UserId>> {
    let column = column_type(client, "decant.control", "allow_list").await?;
    let Some(kind) = column
        .as_deref()
        .and_then(|t| crate::core::id::IdType::of_column(t.trim_end_matches("[]")))
    else {
        return Ok(ids.to_vec());
    };
    ids.iter()
        .map(|id| kind.coerce(id.clone()))
        .collect::<std::result::Result<_, String>>()
        .map_err(|m| {
            Error::Setup(format!(
                "allow=: {m}; the allow list holds the source's user ids"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_shown_as_they_are_written() {
        // (logged as `setting=Windows([Window { start: 01:00:00, ... }])`)
        for text in [
            "paused=true",
            "rate=50/s",
            "rate=max",
            "batch=auto",
            "batch=100",
            "rollout=12.5",
            "allow=1,2,3",
            "window=01:00-02:00,13:00-14:00",
            "window=none",
            "tz=Asia/Kathmandu",
        ] {
            let s: Setting = text.parse().unwrap();
            assert_eq!(s.to_string(), text);
            assert_eq!(s.to_string().parse::<Setting>(), Ok(s));
        }
    }

    #[test]
    fn settings_parse() {
        assert_eq!(
            "rate=50/s".parse::<Setting>(),
            Ok(Setting::Rate("50/s".parse().unwrap()))
        );
        assert_eq!(
            "batch=auto".parse::<Setting>(),
            Ok(Setting::BatchSize(None))
        );
        assert_eq!(
            "batch=100".parse::<Setting>(),
            Ok(Setting::BatchSize(Some(100)))
        );
        assert_eq!(
            "rollout=12.5%".parse::<Setting>(),
            Ok(Setting::Rollout(12.5))
        );
        assert_eq!(
            "allow=1, 2,3".parse::<Setting>(),
            Ok(Setting::AllowList(vec![
                1i64.into(),
                2i64.into(),
                3i64.into()
            ]))
        );
        assert_eq!("allow=".parse::<Setting>(), Ok(Setting::AllowList(vec![])));
        assert!("rollout=101".parse::<Setting>().is_err());
        assert!("batch=0".parse::<Setting>().is_err());
        assert!(
            "speed=3"
                .parse::<Setting>()
                .unwrap_err()
                .contains("unknown setting")
        );
        assert!("rate".parse::<Setting>().is_err());
    }
}
