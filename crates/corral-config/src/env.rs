//! The environment layer: `CORRAL_<LONG_OPTION>` variables.
//!
//! Values are looked up through the caller's `env` function so tests never touch the real
//! environment. Empty values count as unset, so `CORRAL_WORKERS= corral serve ...` falls
//! back to the config file and defaults.

use crate::keys::{closest, Key, Kind, CONFIG_ENV};
use crate::raw::{Origin, RawConfig};
use crate::ConfigError;

/// The caller's environment lookup.
pub(crate) type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `CORRAL_*` names used by other parts of the project (the test suite, the binary's own
/// logging); never reported as unknown.
fn is_reserved(name: &str) -> bool {
    name == "CORRAL_BIN" || name == "CORRAL_LOG" || name.starts_with("CORRAL_TEST_")
}

/// Fails on the first set `CORRAL_*` variable in `names` that corral does not know,
/// suggesting the closest valid one. A name counts as set only if `env` has a value for it.
pub(crate) fn check_names(env: EnvFn<'_>, names: &[String]) -> Result<(), ConfigError> {
    let known: Vec<String> = Key::ALL
        .iter()
        .map(|k| k.env_var())
        .chain([CONFIG_ENV.to_owned()])
        .collect();
    for name in names {
        if !name.starts_with("CORRAL_")
            || is_reserved(name)
            || known.contains(name)
            || env(name).is_none()
        {
            continue;
        }
        let hint = match closest(name, known.iter().map(String::as_str)) {
            Some(near) => format!("did you mean {near}?"),
            None => "corral reads CORRAL_<OPTION> for each long option of `corral serve --help`, \
                     e.g. CORRAL_WORKERS"
                .to_owned(),
        };
        return Err(ConfigError::Invalid(format!(
            "unknown environment variable {name}; {hint} (unset it or fix its name)"
        )));
    }
    Ok(())
}

/// The config file named by `CORRAL_CONFIG`, if set and not empty.
pub(crate) fn config_path(env: EnvFn<'_>) -> Option<String> {
    env(CONFIG_ENV).filter(|v| !v.trim().is_empty())
}

/// Reads every `CORRAL_<OPTION>` variable into the environment layer. List variables are
/// split (binds on ',', the Python path on ':'), with empty items dropped.
pub(crate) fn load(env: EnvFn<'_>) -> RawConfig {
    let mut raw = RawConfig::default();
    for key in Key::ALL {
        let var = key.env_var();
        let Some(value) = env(&var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let origin = Origin::Env(var);
        if key.kind() == Kind::List {
            let items = value
                .split(key.env_separator())
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect();
            raw.set_list(key, items, origin);
        } else {
            raw.set(key, value, origin);
        }
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(vars: &HashMap<String, String>) -> Vec<String> {
        vars.keys().cloned().collect()
    }

    #[test]
    fn reads_scalars_and_lists() {
        let vars = map(&[
            ("CORRAL_WORKERS", "4"),
            ("CORRAL_MAX_BODY", "10MiB"),
            ("CORRAL_BIND", "127.0.0.1:8000, unix:/tmp/s"),
            ("CORRAL_PYTHONPATH", "/a::/b"),
            ("CORRAL_THREADS", ""),
        ]);
        let raw = load(&|k| vars.get(k).cloned());
        let workers = raw.get(Key::Workers).expect("set");
        assert_eq!(workers.value, "4");
        assert_eq!(workers.origin, Origin::Env("CORRAL_WORKERS".into()));
        assert_eq!(
            raw.get(Key::MaxBody).map(|s| s.value.as_str()),
            Some("10MiB")
        );
        let binds = &raw.get_list(Key::Bind).expect("set").value;
        assert_eq!(binds, &["127.0.0.1:8000", "unix:/tmp/s"]);
        let paths = &raw.get_list(Key::Pythonpath).expect("set").value;
        assert_eq!(paths, &["/a", "/b"]);
        assert!(raw.get(Key::Threads).is_none(), "empty means unset");
    }

    #[test]
    fn unknown_variable_suggests_closest() {
        let vars = map(&[("CORRAL_WORKRES", "4")]);
        let err = check_names(&|k| vars.get(k).cloned(), &names(&vars)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("CORRAL_WORKRES") && msg.contains("did you mean CORRAL_WORKERS?"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_variable_without_close_match() {
        let vars = map(&[("CORRAL_ZZZZZZZZZZZZZZZZZZ", "1")]);
        let msg = check_names(&|k| vars.get(k).cloned(), &names(&vars))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("CORRAL_ZZZZZZZZZZZZZZZZZZ") && !msg.contains("did you mean"),
            "{msg}"
        );
    }

    #[test]
    fn reserved_and_known_names_pass() {
        let vars = map(&[
            ("CORRAL_BIN", "/x"),
            ("CORRAL_LOG", "debug"),
            ("CORRAL_TEST_PYTHON", "python3"),
            ("CORRAL_CONFIG", "a.toml"),
            ("CORRAL_LIMIT_REQUEST_FIELD_SIZE", "1"),
            ("PATH", "/bin"),
        ]);
        assert!(check_names(&|k| vars.get(k).cloned(), &names(&vars)).is_ok());
    }

    #[test]
    fn names_the_lookup_does_not_know_are_ignored() {
        let none = |_: &str| None;
        assert!(check_names(&none, &["CORRAL_WORKRES".to_owned()]).is_ok());
    }
}
