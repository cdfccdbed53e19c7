//! The mapping spec (`decant.toml`): where the blobs live and the rules that
//! map JSON paths to rows of normalized tables.
//!
//! Parsing checks everything that can be checked without a database:
//! identifiers, types, columns named by rules, rules that claim the same
//! leaf, rules whose rows could not be told apart. Every error names the
//! rule (or table) and the line.
//!
//! The parts: `model` (the validated spec), `toml` (the file's shapes and
//! their translation), `checks` (keys, distinguishable rules, the trie),
//! `path` (rule paths), `ident` (SQL identifiers).

mod checks;
mod ident;
pub(crate) mod identity;
mod model;
mod path;
mod toml;

pub(crate) use ident::{cut_name, floor_char_boundary, quote};
use model::Result;
pub use model::{Column, Pattern, Settings, Source, Spec, SpecError, Table};
pub(crate) use model::{Node, Policy, Ranked, Rule, RuleKind, Segment};
use std::path::Path;

impl Spec {
    /// Parses and validates spec text (errors name the file `<inline>`).
    pub fn parse(text: &str) -> Result<Spec> {
        toml::parse_named(text, Path::new("<inline>"))
    }

    /// Parses and validates spec text read from `file` (named in errors).
    pub fn parse_named(text: &str, file: &Path) -> Result<Spec> {
        toml::parse_named(text, file)
    }
}

#[cfg(test)]
mod tests {
    use super::path::{Step, parse_path};
    use super::*;

    const GAME: &str = include_str!("../../../fixtures/game/decant.toml");

    fn spec_err(text: &str) -> (usize, String) {
        match Spec::parse(text) {
            Err(SpecError { line, message, .. }) => (line, message),
            Ok(_) => panic!("spec accepted:\n{text}"),
        }
    }

    #[test]
    fn the_game_spec_parses() {
        let spec = Spec::parse(GAME).unwrap();
        assert_eq!(spec.source.table, "user");
        let stat = &spec.tables[spec.table("user_statistic").unwrap()];
        let key: Vec<&str> = stat
            .key
            .iter()
            .map(|&i| stat.columns[i].name.as_str())
            .collect();
        assert_eq!(key, ["mode", "statistic_id"]);
        assert!(spec.rules.len() >= 7);
    }

    #[test]
    fn a_declared_column_no_rule_writes_is_named() {
        let spec = Spec::parse(GAME).unwrap();
        assert!(spec.columns_without_rules().is_empty());
        // a column of a table with rules that none of them fills; a table
        // without rules is named by `tables_without_rules` instead
        let text = GAME.replacen(
            "bot_id = { type = \"text\", not_null = true }",
            "bot_id = { type = \"text\", not_null = true }\ncolour = \"text\"",
            1,
        ) + "\n[tables.user_orphan.columns]\nthing = \"text\"\n";
        let spec = Spec::parse(&text).unwrap();
        assert_eq!(
            spec.columns_without_rules(),
            [("user_selected_bot", "colour")]
        );
        assert_eq!(spec.tables_without_rules(), ["user_orphan"]);
    }

    #[test]
    fn a_rules_name_is_any_unique_text() {
        let first = GAME
            .lines()
            .find(|l| l.starts_with("name = "))
            .expect("a rule's name");
        for name in ["usage stats", "1usage-é", "it's \\\"quoted\\\""] {
            let text = GAME.replacen(first, &format!("name = \"{name}\""), 1);
            let spec = Spec::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                spec.rules.iter().any(|r| r.name == name.replace('\\', "")),
                "{name}"
            );
        }
        let second = GAME
            .lines()
            .filter(|l| l.starts_with("name = "))
            .nth(1)
            .expect("a second rule");
        let twice =
            GAME.replacen(first, "name = \"same\"", 1)
                .replacen(second, "name = \"same\"", 1);
        let (_, message) = spec_err(&twice);
        assert!(message.contains("same"), "{message}");
    }

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path(r#"a.{x}."b.c[0]".list[{pos}]"#).unwrap(),
            (
                vec![
                    Step::Literal("a".into()),
                    Step::Capture("x".into()),
                    Step::Literal("b.c[0]".into()),
                    Step::Literal("list".into())
                ],
                Some("pos".into())
            )
        );
        let e = parse_path("a..b").unwrap_err();
        assert!(e.contains("empty key") && e.contains("written \"\""), "{e}");
        assert!(parse_path(r#"a."".b"#).is_ok());
        // a blob whose root is an array: what rules need, and a way there
        let e = parse_path("[{pos}]").unwrap_err();
        assert!(
            e.contains("root is an array") && e.contains("Fixup::custom"),
            "{e}"
        );
        let e = parse_path("[{pos}].k").unwrap_err();
        assert!(e.contains("root is an array"), "{e}");
        assert!(parse_path("a[{p}]b").is_err());
        assert!(parse_path("a[{p}][{q}].b").is_ok());
        assert!(parse_path("a.{1x}").is_err());
        assert!(parse_path("").is_err());
        // an unclosed capture or position is refused, not read as closed
        let e = parse_path("x.{k").unwrap_err();
        assert!(e.contains("`{k` lacks its closing `}`"), "{e}");
        let e = parse_path("x[{k}").unwrap_err();
        assert!(e.contains("`[{k}` lacks its closing `]`"), "{e}");
        assert!(parse_path("x.{k}}").is_err());
        // jsonpath's root and fixups' wildcard, quoted when they are keys
        let e = parse_path("$.s.{k}").unwrap_err();
        assert!(e.contains("without `$.`"), "{e}");
        // the root itself: what to do instead
        let e = parse_path("$").unwrap_err();
        assert!(
            e.contains("cannot claim the whole blob") && e.contains("constants"),
            "{e}"
        );
        let e = parse_path("s.*").unwrap_err();
        assert!(e.contains("`{column}`"), "{e}");
        assert!(parse_path(r#""$".s"#).is_ok());
        assert!(parse_path(r#"s."*""#).is_ok());
        assert!(parse_path("s.$").is_ok());
    }

    const BASE: &str = r#"
[source]
table = "user"

[tables.t.columns]
k = "text"
v = "int8"
"#;

    #[test]
    fn a_spec_that_does_not_parse_names_the_line() {
        let (line, msg) = spec_err("[source]\ntable = \"user\"\n\n[[rules]\n");
        assert_eq!(line, 4, "{msg}");
        assert!(msg.contains("does not parse"), "{msg}");
    }

    #[test]
    fn source_and_settings_errors_name_their_line() {
        let (line, msg) = spec_err(&BASE.replace(
            "table = \"user\"",
            "table = \"user\"\nschema = \"no$dollar\"",
        ));
        assert_eq!(line, 4, "{msg}");
        assert!(msg.contains("source.schema"), "{msg}");
        let text = format!(
            "{BASE}\n[settings]\nmax_attempts = 3\n  views_schema = \"New $1 Views\"\n\n\
             [[rules]]\nname = \"r\"\npath = \"xp\"\ntable = \"t\"\nvalue = \"v\"\n"
        );
        let (line, msg) = spec_err(&text);
        assert!(msg.contains("settings.views_schema"), "{msg}");
        assert_eq!(line, 11, "{msg}");
    }

    #[test]
    fn names_that_meet_once_cut_to_63_bytes_are_refused() {
        let one = |name: &str| {
            format!(
                "[source]\ntable = \"user\"\n\n[tables.{name}.columns]\nv = \"int8\"\n\n\
                 [[rules]]\nname = \"r\"\npath = \"xp\"\ntable = \"{name}\"\nvalue = \"v\"\n"
            )
        };
        // a 63-byte table: its view `<table>_all`, cut, is the table
        let (_, msg) = spec_err(&one(&"t".repeat(63)));
        assert!(
            msg.contains("table `ttt") && msg.contains("'s cross-user view would be named"),
            "{msg}"
        );
        // 60 bytes: the view is cut to `<table>_al`, as it always was
        Spec::parse(&one(&"t".repeat(60))).unwrap();
        let (_, msg) = spec_err(&format!(
            "{BASE}\n[tables.t_all.columns]\nv = \"int8\"\n\n\
             [[rules]]\nname = \"r\"\npath = \"xp\"\ntable = \"t\"\nvalue = \"v\"\n"
        ));
        assert!(
            msg.contains("table `t`'s cross-user view would be named `t_all`, as table `t_all` is"),
            "{msg}"
        );
        // the source table is no target table, nor a view's name
        let (_, msg) = spec_err(&one("user"));
        assert!(msg.contains("as the source table is"), "{msg}");
        let (_, msg) = spec_err(&one("u").replace("table = \"user\"", "table = \"u_all\""));
        assert!(msg.contains("as the source table is"), "{msg}");
        // two top-N functions cut to one name
        let long = "r".repeat(61);
        let (_, msg) = spec_err(&format!(
            "{BASE}\n[[rules]]\nname = \"r\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n\n\
             [[ranked]]\nname = \"{long}\"\ntable = \"t\"\nvalue = \"v\"\nwhere = {{ k = \"a\" }}\n\n\
             [[ranked]]\nname = \"{long}_t\"\ntable = \"t\"\nvalue = \"v\"\nwhere = {{ k = \"b\" }}\n"
        ));
        assert!(msg.contains("its top-N function would be named"), "{msg}");
    }

    #[test]
    fn two_rules_claiming_one_leaf_are_refused() {
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"one\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\nconstants = {{}}\n\n\
             [[rules]]\nname = \"two\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n"
        );
        let (line, msg) = spec_err(&text);
        assert!(msg.contains("rule `two`"), "{msg}");
        assert_eq!(line, 16, "{msg}");
    }

    #[test]
    fn a_rule_inside_a_claimed_value_is_refused() {
        let text = format!(
            "{BASE}\n[tables.u.columns]\nv = \"jsonb\"\n\n[[rules]]\nname = \"whole\"\npath = \"s\"\ntable = \"u\"\nvalue = \"v\"\n\n\
             [[rules]]\nname = \"inner\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n"
        );
        let (_, msg) = spec_err(&text);
        assert!(
            msg.contains("rule `inner`") && msg.contains("whole"),
            "{msg}"
        );
    }

    #[test]
    fn bounds_no_value_meets_are_refused_with_their_line() {
        let head = "[source]\ntable = \"user\"\n\n[tables.t.columns]\nk = \"text\"\n";
        for (column, expected) in [
            (
                "v = { type = \"int4\", min = 10, max = 5 }",
                "min 10 is above max 5",
            ),
            (
                "v = { type = \"float8\", min = 0.5, max = 0.25 }",
                "min 0.5 is above max 0.25",
            ),
            (
                "v = { type = \"text\", values = [] }",
                "values = [] allows no value",
            ),
            ("v = { type = \"text\", max_length = 0 }", "max_length = 0"),
        ] {
            let (line, msg) = spec_err(&format!("{head}{column}\n"));
            assert_eq!(line, 6, "{msg}");
            assert!(msg.contains(expected), "{column}: {msg}");
        }
        // equal bounds are one allowed value, not an error
        let one = format!(
            "{head}v = {{ type = \"int4\", min = 5, max = 5 }}\n[[rules]]\nname = \"r\"\npath = \"a.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n"
        );
        Spec::parse(&one).unwrap();
    }

    #[test]
    fn a_not_null_column_an_object_rule_may_leave_null_is_refused_with_the_way_out() {
        let text = "[source]\ntable = \"user\"\n\n\
             [tables.p.columns]\nnick = { type = \"text\", not_null = true }\nextra = \"jsonb\"\n\n\
             [[rules]]\nname = \"profile\"\npath = \"profile\"\ntable = \"p\"\n\
             keys = { nick = \"nick\" }\n";
        let (line, msg) = spec_err(text);
        // the table's first column in the file (`extra` comes first by name)
        assert_eq!(line, 5, "{msg}");
        for part in [
            "`nick`",
            "rule `profile` may leave it NULL",
            "drop `not_null`",
        ] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
        // a scalar rule always writes its value column
        Spec::parse(
            "[source]\ntable = \"user\"\n\n[tables.p.columns]\nnick = { type = \"text\", not_null = true }\n\n\
             [[rules]]\nname = \"nick\"\npath = \"profile.nick\"\ntable = \"p\"\nvalue = \"nick\"\n",
        )
        .unwrap();
    }

    #[test]
    fn every_broken_entry_is_reported_at_once() {
        let text = "[source]\ntable = \"user\"\n\n\
             [tables.a.columns]\nv = \"integer64\"\n\n\
             [tables.b.columns]\nk = \"text\"\nv = \"int8\"\n\n\
             [tables.c.columns]\nv = { type = \"int4\", min = 10, max = 5 }\n\n\
             [[rules]]\nname = \"into_a\"\npath = \"a\"\ntable = \"a\"\nvalue = \"v\"\n\n\
             [[rules]]\nname = \"into_b\"\npath = \"b.{k}\"\ntable = \"b\"\nvalue = \"nope\"\n\n\
             [[rules]]\nname = \"nowhere\"\npath = \"z\"\ntable = \"zz\"\nvalue = \"v\"\n";
        let (line, msg) = spec_err(text);
        assert_eq!(line, 5, "{msg}");
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines.len(), 4, "{msg}");
        assert!(lines[0].contains("unknown type `integer64`"), "{msg}");
        assert!(
            lines[1].starts_with("spec <inline>:12: table `c`") && lines[1].contains("above max"),
            "{msg}"
        );
        assert!(
            lines[2].starts_with("spec <inline>:20: rule `into_b`"),
            "{msg}"
        );
        assert!(
            lines[3].starts_with("spec <inline>:26: rule `nowhere`")
                && lines[3].contains("not declared"),
            "{msg}"
        );
        // the rule into the refused table `a` adds nothing
        assert!(!msg.contains("into_a"), "{msg}");

        // the checks across rules too: both tables' not-null columns
        let text = "[source]\ntable = \"user\"\n\n\
             [tables.a.columns]\nk = \"text\"\nn = { type = \"int4\", not_null = true }\nx = \"jsonb\"\n\n\
             [tables.b.columns]\nk = \"text\"\nn = { type = \"int4\", not_null = true }\nx = \"jsonb\"\n\n\
             [[rules]]\nname = \"ra\"\npath = \"a.{k}\"\ntable = \"a\"\nkeys = { n = \"n\" }\nextra = \"x\"\n\n\
             [[rules]]\nname = \"rb\"\npath = \"b.{k}\"\ntable = \"b\"\nkeys = { n = \"n\" }\nextra = \"x\"\n";
        let (_, msg) = spec_err(text);
        assert_eq!(msg.lines().count(), 2, "{msg}");
        assert!(
            msg.contains("table `a` column `n` is not_null")
                && msg.contains("table `b` column `n` is not_null"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_type_is_refused_with_its_line() {
        let text =
            "[source]\ntable = \"user\"\n\n[tables.t.columns]\nk = \"text\"\nv = \"integer64\"\n";
        let (line, msg) = spec_err(text);
        assert_eq!(line, 6, "{msg}");
        assert!(msg.contains("unknown type `integer64`"), "{msg}");
    }

    #[test]
    fn bad_identifiers_are_refused() {
        // the source's names are the team's: any name PostgreSQL takes
        // quoted, but for what could end decant's dollar quotes
        let (_, msg) = spec_err("[source]\ntable = \"user$$; drop table x\"\n");
        assert!(msg.contains("holds a NUL or a `$`"), "{msg}");
        let (_, msg) = spec_err(&format!("[source]\ntable = \"{}\"\n", "é".repeat(32)));
        assert!(msg.contains("longer than PostgreSQL's 63 bytes"), "{msg}");
        for name in [
            "my-app",
            "the users' \\\"list\\\"",
            "user; drop table x",
            "Joueurs été",
        ] {
            let text = BASE.replace(
                "table = \"user\"",
                &format!("table = \"{name}\"\nschema = \"{name}\""),
            );
            let spec = Spec::parse(&format!(
                "{text}\n[[rules]]\nname = \"r\"\npath = \"xp\"\ntable = \"t\"\nvalue = \"v\"\n"
            ))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(spec.source.schema, spec.settings.target_schema);
        }
        // a schema-qualified table: the message says how to write it
        let (_, msg) = spec_err("[source]\ntable = \"fleet.driver\"\n");
        assert!(
            msg.contains("write schema = \"fleet\" and table = \"driver\""),
            "{msg}"
        );
        // schema `decant` is decant's own
        for (extra, key) in [
            ("schema = \"decant\"", "source.schema"),
            (
                "[settings]\ntarget_schema = \"decant\"",
                "settings.target_schema",
            ),
            (
                "[settings]\nviews_schema = \"decant\"",
                "settings.views_schema",
            ),
        ] {
            let text = BASE.replace("table = \"user\"", &format!("table = \"user\"\n{extra}"));
            let (_, msg) = spec_err(&text);
            assert!(
                msg.contains(&format!("{key}: schema `decant` is decant's own")),
                "{extra}: {msg}"
            );
        }
        // one column named as two of id, blob and flag, at its line
        for (source, key, other) in [
            ("flag = \"data\"", "flag", "blob"),
            ("flag = \"id\"", "flag", "id"),
            ("blob = \"id\"", "blob", "id"),
        ] {
            let text = BASE.replace("table = \"user\"", &format!("table = \"user\"\n{source}"));
            let (line, msg) = spec_err(&text);
            assert!(
                msg.contains(&format!("source.{key}: `"))
                    && msg.contains(&format!("is also source.{other}"))
                    && msg.contains("three different columns"),
                "{source}: {msg}"
            );
            assert_eq!(line, 4, "{source}: {msg}");
        }
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"r\"\npath = \"s.{{k-1}}\"\ntable = \"t\"\nvalue = \"v\"\n"
        );
        let (line, msg) = spec_err(&text);
        assert!(
            msg.contains("rule `r`") && msg.contains("not a valid name"),
            "{msg}"
        );
        assert_eq!(line, 9);
    }

    #[test]
    fn missing_columns_and_tables_are_named() {
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"r\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"nope\"\n"
        );
        let (_, msg) = spec_err(&text);
        assert!(msg.contains("`nope` is not a column of table `t`"), "{msg}");
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"r\"\npath = \"s.{{k}}\"\ntable = \"missing\"\nvalue = \"v\"\n"
        );
        let (_, msg) = spec_err(&text);
        assert!(msg.contains("table `missing` is not declared"), "{msg}");
        // an object rule without an `extra` column says what to add
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"r\"\npath = \"s\"\ntable = \"t\"\nkeys = {{ v = \"v\" }}\n"
        );
        let (_, msg) = spec_err(&text);
        assert!(
            msg.contains("table `t` has none: add `extra = \"jsonb\"` to its columns"),
            "{msg}"
        );
    }

    #[test]
    fn rules_sharing_a_table_need_telling_apart() {
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"a\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n\n\
             [[rules]]\nname = \"b\"\npath = \"old.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n"
        );
        let (_, msg) = spec_err(&text);
        assert!(msg.contains("could not be told apart"), "{msg}");
        // a constant makes them distinguishable
        let text = format!(
            "{BASE}\n[[rules]]\nname = \"a\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n\n\
             [[rules]]\nname = \"b\"\npath = \"xp\"\ntable = \"t\"\nvalue = \"v\"\nconstants = {{ k = \"xp\" }}\n"
        );
        Spec::parse(&text).unwrap();
    }

    #[test]
    fn the_depth_limit_is_a_setting_within_bounds() {
        assert_eq!(Spec::parse(GAME).unwrap().settings.max_depth, 128);
        let with =
            |n: &str| GAME.replacen("[settings]\n", &format!("[settings]\nmax_depth = {n}\n"), 1);
        assert_eq!(Spec::parse(&with("300")).unwrap().settings.max_depth, 300);
        for bad in ["0", "513"] {
            let (_, msg) = spec_err(&with(bad));
            assert!(
                msg.contains("max_depth") && msg.contains("1 to 512"),
                "{msg}"
            );
        }
        // toml's own error, on the setting's line
        let text = with("-1");
        let line = 1 + text
            .lines()
            .position(|l| l.starts_with("max_depth"))
            .unwrap();
        let (at, msg) = spec_err(&text);
        assert!(at == line && msg.contains("-1"), "line {at}: {msg}");
    }

    #[test]
    fn a_capture_column_is_text_or_an_integer() {
        let with = |ty: &str| {
            format!(
                "{BASE}\n[tables.y.columns]\nyear = \"{ty}\"\nn = \"int8\"\n\n\
                 [[rules]]\nname = \"y\"\npath = \"by.{{year}}\"\ntable = \"y\"\nvalue = \"n\"\n"
            )
        };
        for ok in ["text", "int2", "int4", "int8", "date"] {
            Spec::parse(&with(ok)).unwrap();
        }
        let (_, msg) = spec_err(&with("float8"));
        assert!(
            msg.contains("capture column `year` must be of type text, date or an integer"),
            "{msg}"
        );
    }

    #[test]
    fn a_pattern_is_portable_text_validation() {
        let with = |col: &str| {
            format!(
                "{BASE}\n[tables.y.columns]\nsku = {col}\nn = \"int8\"\n\n\
                 [[rules]]\nname = \"y\"\npath = \"by.{{sku}}\"\ntable = \"y\"\nvalue = \"n\"\n"
            )
        };
        let spec =
            Spec::parse(&with(r#"{ type = "text", pattern = '^SKU-[0-9]{3,6}$' }"#)).unwrap();
        let c = &spec.tables[spec.table("y").unwrap()].columns[1];
        assert!(c.check_key("SKU-0042").is_ok());
        for bad in ["SKU-42", "sku-0042", "SKU-0042\n", "xSKU-0042"] {
            let e = c.check_key(bad).unwrap_err();
            assert!(e.contains("matching ^SKU-"), "{bad}: {e}");
        }
        // what PostgreSQL and decant read differently is refused
        for (p, why) in [
            (r"^\d+$", "means different things"),
            (r"(?i)abc", "not portable"),
            ("[[:alpha:]]", "not portable"),
            ("ä+", "printable ASCII"),
            ("(unclosed", "not a regular expression"),
            // past PostgreSQL's bound on a repetition count
            ("^(a|b){256}$", "repetition count of 256"),
            ("^a{2,300}$", "repetition count of 300"),
            ("^a{99999999999999999999}$", "PostgreSQL allows at most 255"),
        ] {
            let (_, msg) = spec_err(&with(&format!("{{ type = \"text\", pattern = '{p}' }}")));
            assert!(msg.contains(why), "{p}: {msg}");
        }
        let (_, msg) = spec_err(&with(r#"{ type = "int4", pattern = "^1" }"#));
        assert!(msg.contains("apply to text"), "{msg}");
        // bounds up to 255 are PostgreSQL's too; braces escaped or in a
        // class are no bounds
        for ok in ["^a{255}$", "^a{0,255}$", r"^\{999\}$", "^[{999}]+$"] {
            Pattern::new(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // `.` takes a newline, as in PostgreSQL
        let dot = Pattern::new("^a.b$").unwrap();
        assert!(dot.matches("a\nb") && !dot.matches("ab"));
    }

    #[test]
    fn literal_beats_wildcard_without_conflict() {
        let text = format!(
            "{BASE}\n[tables.sel.columns]\npos = \"int4\"\nv = \"text\"\n\n\
             [[rules]]\nname = \"a\"\npath = \"s.{{k}}\"\ntable = \"t\"\nvalue = \"v\"\n\n\
             [[rules]]\nname = \"b\"\npath = \"s.selected[{{pos}}]\"\ntable = \"sel\"\nvalue = \"v\"\n"
        );
        Spec::parse(&text).unwrap();
    }

    #[test]
    fn ranked_statistics_resolve_to_a_rule_and_a_concrete_path() {
        let spec = Spec::parse(GAME).unwrap();
        let paths: Vec<(&str, Vec<&str>)> = spec
            .ranked
            .iter()
            .map(|r| (r.name.as_str(), r.path.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            paths,
            [
                (
                    "kidnap_points",
                    vec!["marriage", "stats", "kidnap", "points"]
                ),
                ("xp", vec!["xp"]),
            ]
        );
        let ranked = |body: &str| {
            format!("{GAME}\n[[ranked]]\nname = \"r\"\ntable = \"user_statistic\"\n{body}\n")
        };
        for (body, expected) in [
            (
                "value = \"value\"\nwhere = { mode = \"lastPlayed\", statistic_id = \"x\" }",
                "claimed by another rule's literal key",
            ),
            ("value = \"mode\"", "is not a number column"),
            ("value = \"nope\"", "`nope` is not a column"),
            (
                "value = \"value\"\nwhere = { mode = \"kidnap\" }",
                "give a value for `statistic_id`",
            ),
        ] {
            let (_, message) = spec_err(&ranked(body));
            assert!(message.contains(expected), "{body}: {message}");
            assert!(message.starts_with("ranked `r`"), "{message}");
        }
        // a column an object rule maps from a key: the object's path, and
        // the key in it
        let object = |table: &str, body: &str| {
            format!("{GAME}\n[[ranked]]\nname = \"r\"\ntable = \"{table}\"\n{body}\n")
        };
        for (table, body, path, key) in [
            (
                "user_config",
                "value = \"mans\"",
                vec!["marriage", "config"],
                "mans",
            ),
            (
                "user_bot",
                "value = \"level\"\nwhere = { bot_id = \"b1\" }",
                vec!["bots", "b1"],
                "level",
            ),
        ] {
            let spec = Spec::parse(&object(table, body)).unwrap();
            let r = spec.ranked.last().unwrap();
            assert_eq!(r.path, path, "{body}");
            assert_eq!(r.key.as_deref(), Some(&[key.to_string()][..]), "{body}");
        }
        let (_, message) = spec_err(&object("user_bot", "value = \"level\""));
        assert!(message.contains("give a value for `bot_id`"), "{message}");
        let (_, message) = spec_err(&object(
            "user_achievement",
            "value = \"progress\"\nwhere = { achievement_id = \"a\", unlocked_at = 1 }",
        ));
        assert!(
            message.contains("neither captured nor constant"),
            "{message}"
        );
    }

    #[test]
    fn an_unknown_column_option_is_named_with_its_line() {
        let text = GAME.replace(
            "progress = { type = \"int4\", min = 0 }",
            "progress = { type = \"int4\", minimum = 0 }",
        );
        assert_ne!(text, GAME);
        let line = text.lines().position(|l| l.contains("minimum")).unwrap() + 1;
        let (at, message) = spec_err(&text);
        assert_eq!(at, line, "{message}");
        assert!(message.contains("unknown field `minimum`"), "{message}");
        assert!(!message.contains("untagged"), "{message}");
        let text = GAME.replace("achievement_id = \"text\"", "achievement_id = 7");
        let (_, message) = spec_err(&text);
        assert!(message.contains("a column is a type name"), "{message}");
    }
}
