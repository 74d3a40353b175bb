//! The config file layer: discovery, TOML parsing and key/type checking.
//!
//! Discovery: `--config FILE` or `CORRAL_CONFIG` (must exist), else `corral.toml` in the
//! working directory, else the `[tool.corral]` table of `pyproject.toml` there (ignored when
//! it has no such table). Keys are the long option names, kebab- or snake_case, plus `app`.

use std::path::{Path, PathBuf};

use crate::keys::{closest, Key, Kind};
use crate::raw::{Origin, RawConfig};
use crate::ConfigError;

/// A config file path the user named explicitly.
pub(crate) struct Explicit {
    /// The path as given (relative paths are relative to the working directory).
    pub path: String,
    /// What named it: `--config` or `CORRAL_CONFIG`.
    pub given_by: &'static str,
}

/// A config file that was found, and whether its settings live in `[tool.corral]`.
struct Located {
    path: PathBuf,
    pyproject: bool,
    explicit: bool,
}

/// Finds, reads and checks the config file; an empty layer when there is none.
pub(crate) fn load(explicit: Option<Explicit>, cwd: &Path) -> Result<RawConfig, ConfigError> {
    let Some(found) = locate(explicit, cwd)? else {
        return Ok(RawConfig::default());
    };
    let table = read_table(&found.path)?;
    if !found.pyproject {
        return from_table(&table, &found.path, "");
    }
    match table.get("tool").and_then(|tool| tool.get("corral")) {
        Some(toml::Value::Table(section)) => from_table(section, &found.path, "tool.corral."),
        Some(other) => Err(ConfigError::Invalid(format!(
            "tool.corral in {} must be a table ([tool.corral]), not {}",
            found.path.display(),
            other.type_str()
        ))),
        None if found.explicit => Err(ConfigError::Invalid(format!(
            "{} has no [tool.corral] table; add one with corral's settings, or point --config \
             at a corral.toml",
            found.path.display()
        ))),
        None => Ok(RawConfig::default()),
    }
}

fn locate(explicit: Option<Explicit>, cwd: &Path) -> Result<Option<Located>, ConfigError> {
    if let Some(Explicit { path, given_by }) = explicit {
        let path = cwd.join(path);
        if !path.is_file() {
            let problem = if path.exists() {
                "is not a file"
            } else {
                "does not exist"
            };
            return Err(ConfigError::Invalid(format!(
                "config file {} (from {given_by}) {problem}; fix the path or drop {given_by}",
                path.display()
            )));
        }
        let pyproject = path.file_name().is_some_and(|n| n == "pyproject.toml");
        return Ok(Some(Located {
            path,
            pyproject,
            explicit: true,
        }));
    }
    let corral = cwd.join("corral.toml");
    if corral.is_file() {
        return Ok(Some(Located {
            path: corral,
            pyproject: false,
            explicit: false,
        }));
    }
    let pyproject = cwd.join("pyproject.toml");
    if pyproject.is_file() {
        return Ok(Some(Located {
            path: pyproject,
            pyproject: true,
            explicit: false,
        }));
    }
    Ok(None)
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::Invalid(format!("cannot read config file {}: {e}", path.display()))
    })?;
    text.parse::<toml::Table>().map_err(|e| {
        ConfigError::Invalid(format!(
            "invalid TOML in {}: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })
}

/// Checks every key of `table` and converts the values into a raw layer. `prefix` is how the
/// table is addressed in messages ("" or "tool.corral.").
fn from_table(table: &toml::Table, path: &Path, prefix: &str) -> Result<RawConfig, ConfigError> {
    let mut raw = RawConfig::default();
    let mut seen: Vec<(Key, &str)> = Vec::new();
    for (written, value) in table {
        let Some(key) = Key::from_file_key(written) else {
            return Err(unknown_key(written, path, prefix));
        };
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            return Err(ConfigError::Invalid(format!(
                "{prefix}{first} and {prefix}{written} in {} are the same setting; keep one",
                path.display()
            )));
        }
        seen.push((key, written));
        let origin = Origin::File {
            key: format!("{prefix}{written}"),
            path: path.to_owned(),
        };
        let wrong_type = |expected: &str| {
            ConfigError::Invalid(format!(
                "{} must be {expected}, not {}",
                origin.describe(key),
                describe_value(value)
            ))
        };
        match convert(key.kind(), value) {
            Ok(Converted::One(v)) => raw.set(key, v, origin),
            Ok(Converted::Many(v)) => raw.set_list(key, v, origin),
            Err(expected) => return Err(wrong_type(expected)),
        }
    }
    Ok(raw)
}

fn unknown_key(written: &str, path: &Path, prefix: &str) -> ConfigError {
    let names = Key::ALL.map(Key::name);
    let hint = match closest(written, names) {
        Some(near) => format!("did you mean \"{near}\"?"),
        None => format!("valid keys are {}", names.join(", ")),
    };
    ConfigError::Invalid(format!(
        "unknown key \"{prefix}{written}\" in {}; {hint}",
        path.display()
    ))
}

enum Converted {
    One(String),
    Many(Vec<String>),
}

/// Converts a TOML value to the raw string form of `kind`, or names the expected type.
fn convert(kind: Kind, value: &toml::Value) -> Result<Converted, &'static str> {
    use toml::Value as V;
    let one = |s: String| Ok(Converted::One(s));
    match (kind, value) {
        (Kind::Text, V::String(s)) => one(s.clone()),
        (Kind::Text, _) => Err("a string"),
        (Kind::List, V::String(s)) => Ok(Converted::Many(vec![s.clone()])),
        (Kind::List, V::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Converted::Many)
            .ok_or("a string or an array of strings"),
        (Kind::List, _) => Err("a string or an array of strings"),
        (Kind::Int | Kind::Size | Kind::Duration, V::Integer(n)) => one(n.to_string()),
        (Kind::Int | Kind::Size | Kind::Duration, V::String(s)) => one(s.clone()),
        (Kind::Int, _) => Err("an integer"),
        (Kind::Size, _) => Err("a size such as \"10MiB\" or an integer number of bytes"),
        (Kind::Duration, _) => Err("a duration such as \"30s\" or an integer number of seconds"),
        (Kind::Bool, V::Boolean(b)) => one(b.to_string()),
        (Kind::Bool, _) => Err("true or false"),
    }
}

/// "a boolean (true)", "an array", ... for wrong-type messages.
fn describe_value(value: &toml::Value) -> String {
    let article = if value.is_array() || value.is_integer() {
        "an"
    } else {
        "a"
    };
    let shown = value.to_string();
    if shown.len() <= 40 && !value.is_table() {
        format!("{article} {} ({shown})", value.type_str())
    } else {
        format!("{article} {}", value.type_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TempDir;

    fn value_of(raw: &RawConfig, key: Key) -> Option<String> {
        raw.get(key).map(|s| s.value.clone())
    }

    #[test]
    fn corral_toml_is_found_and_read() {
        let dir = TempDir::new("file-corral");
        dir.write(
            "corral.toml",
            "app = \"site.wsgi\"\nworkers = 3\nmax_body = \"10MiB\"\nkeepalive-timeout = 7\n\
             preload = false\nbind = \"127.0.0.1:9000\"\npythonpath = [\"a\", \"b\"]\n",
        );
        let raw = load(None, dir.path()).expect("valid file");
        assert_eq!(value_of(&raw, Key::App).as_deref(), Some("site.wsgi"));
        assert_eq!(value_of(&raw, Key::Workers).as_deref(), Some("3"));
        assert_eq!(value_of(&raw, Key::MaxBody).as_deref(), Some("10MiB"));
        assert_eq!(value_of(&raw, Key::KeepaliveTimeout).as_deref(), Some("7"));
        assert_eq!(value_of(&raw, Key::Preload).as_deref(), Some("false"));
        assert_eq!(
            raw.get_list(Key::Bind).map(|s| s.value.clone()),
            Some(vec!["127.0.0.1:9000".into()])
        );
        assert_eq!(
            raw.get_list(Key::Pythonpath).map(|s| s.value.len()),
            Some(2)
        );
        let origin = &raw.get(Key::MaxBody).expect("set").origin;
        let expected = format!("max_body in {}", dir.path().join("corral.toml").display());
        assert_eq!(origin.describe(Key::MaxBody), expected);
    }

    #[test]
    fn pyproject_tool_corral_is_used_when_there_is_no_corral_toml() {
        let dir = TempDir::new("file-pyproject");
        dir.write(
            "pyproject.toml",
            "[project]\nname = \"x\"\n[tool.corral]\nworkers = 2\n",
        );
        let raw = load(None, dir.path()).expect("valid file");
        let workers = raw.get(Key::Workers).expect("set");
        assert_eq!(workers.value, "2");
        assert!(workers
            .origin
            .describe(Key::Workers)
            .starts_with("tool.corral.workers in "));
    }

    #[test]
    fn pyproject_without_tool_corral_is_ignored() {
        let dir = TempDir::new("file-pyproject-none");
        dir.write(
            "pyproject.toml",
            "[project]\nname = \"x\"\n[tool.black]\nline-length = 1\n",
        );
        let raw = load(None, dir.path()).expect("ignored");
        assert!(raw.get(Key::Workers).is_none());
    }

    #[test]
    fn corral_toml_wins_over_pyproject() {
        let dir = TempDir::new("file-both");
        dir.write("pyproject.toml", "[tool.corral]\nworkers = 2\n");
        dir.write("corral.toml", "workers = 5\n");
        let raw = load(None, dir.path()).expect("valid");
        assert_eq!(value_of(&raw, Key::Workers).as_deref(), Some("5"));
    }

    #[test]
    fn explicit_file_must_exist() {
        let dir = TempDir::new("file-explicit");
        let explicit = Explicit {
            path: "missing.toml".into(),
            given_by: "--config",
        };
        let msg = load(Some(explicit), dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("missing.toml") && msg.contains("--config"),
            "{msg}"
        );
        assert!(msg.contains("does not exist"), "{msg}");
    }

    #[test]
    fn explicit_pyproject_needs_the_table() {
        let dir = TempDir::new("file-explicit-py");
        dir.write("pyproject.toml", "[project]\nname = \"x\"\n");
        let explicit = Explicit {
            path: "pyproject.toml".into(),
            given_by: "CORRAL_CONFIG",
        };
        let msg = load(Some(explicit), dir.path()).unwrap_err().to_string();
        assert!(msg.contains("no [tool.corral] table"), "{msg}");
    }

    #[test]
    fn unknown_key_suggests_closest() {
        let dir = TempDir::new("file-unknown");
        dir.write("corral.toml", "workres = 4\n");
        let msg = load(None, dir.path()).unwrap_err().to_string();
        let path = dir.path().join("corral.toml");
        let expected = format!(
            "unknown key \"workres\" in {}; did you mean \"workers\"?",
            path.display()
        );
        assert_eq!(msg, expected);
    }

    #[test]
    fn unknown_key_without_close_match_lists_keys() {
        let dir = TempDir::new("file-unknown-far");
        dir.write("corral.toml", "zzzzzz = 4\n");
        let msg = load(None, dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("valid keys are app, bind,") && !msg.contains("did you mean"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_types_name_key_file_and_expected_type() {
        let cases = [
            ("workers = true", "an integer"),
            ("app = 3", "a string"),
            ("bind = [1]", "a string or an array of strings"),
            ("preload = \"yes\"", "true or false"),
            ("max-body = 1.5", "a size"),
            ("graceful-timeout = [30]", "a duration"),
        ];
        for (line, expected) in cases {
            let dir = TempDir::new("file-type");
            dir.write("corral.toml", line);
            let msg = load(None, dir.path()).unwrap_err().to_string();
            let key = line.split(' ').next().expect("key");
            assert!(
                msg.starts_with(&format!("{key} in {}", dir.path().display())),
                "{msg}"
            );
            assert!(
                msg.contains(&format!("must be {expected}")),
                "{line}: {msg}"
            );
        }
    }

    #[test]
    fn same_key_in_both_spellings_is_rejected() {
        let dir = TempDir::new("file-dup");
        dir.write("corral.toml", "max-body = 1\nmax_body = 2\n");
        let msg = load(None, dir.path()).unwrap_err().to_string();
        assert!(msg.contains("max-body and max_body"), "{msg}");
    }

    #[test]
    fn invalid_toml_names_the_file() {
        let dir = TempDir::new("file-bad-toml");
        dir.write("corral.toml", "workers = = 4\n");
        let msg = load(None, dir.path()).unwrap_err().to_string();
        let path = dir.path().join("corral.toml");
        assert!(
            msg.starts_with(&format!("invalid TOML in {}:", path.display())),
            "{msg}"
        );
        assert!(msg.contains("line 1"), "{msg}");
    }
}
