//! The raw layer: unvalidated strings from one source each, remembering where they came from
//! so validation errors can point at the exact flag, variable or file key.
//!
//! Every source (command line, environment, config file) produces a [`RawConfig`]; they are
//! layered with [`RawConfig::over`] and validated once (see `validate.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::keys::Key;

/// Where a raw value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A command-line flag or argument.
    Cli,
    /// An environment variable, by name.
    Env(String),
    /// A config file key, as written (e.g. `max_body`, or `tool.corral.workers` in
    /// pyproject.toml), and the absolute file path.
    File { key: String, path: PathBuf },
}

impl Origin {
    /// Names the place the user has to look at: `--workers`, `CORRAL_WORKERS`,
    /// `workers in /srv/app/corral.toml`.
    pub(crate) fn describe(&self, key: Key) -> String {
        match self {
            Origin::Cli => match key {
                Key::App => "the APP argument".to_owned(),
                Key::Preload => "--preload/--no-preload".to_owned(),
                _ => format!("--{}", key.name()),
            },
            Origin::Env(var) => var.clone(),
            Origin::File { key, path } => format!("{key} in {}", path.display()),
        }
    }

    /// Shows a setting the way the user wrote it: `--threads 4`, `CORRAL_THREADS=4`,
    /// `threads = 4 in /srv/app/corral.toml`.
    pub(crate) fn show(&self, key: Key, value: &str) -> String {
        match self {
            Origin::Cli if key == Key::App => format!("APP {value}"),
            Origin::Cli => format!("--{} {value}", key.name()),
            Origin::Env(var) => format!("{var}={value}"),
            Origin::File { key, path } => format!("{key} = {value} in {}", path.display()),
        }
    }
}

/// A raw value and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

/// Settings from one source (or several, once layered), not yet validated.
///
/// Scalar keys hold one string (booleans as "true"/"false", numbers as written) so that all
/// sources go through the same parsers; list keys hold their items in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawConfig {
    scalars: BTreeMap<Key, Sourced<String>>,
    lists: BTreeMap<Key, Sourced<Vec<String>>>,
}

impl RawConfig {
    /// Records a scalar setting, replacing any earlier value from the same source
    /// (for flags given twice, the last one wins, as usual on command lines).
    pub(crate) fn set(&mut self, key: Key, value: String, origin: Origin) {
        debug_assert!(
            key.kind() != crate::keys::Kind::List,
            "{key:?} is a list key"
        );
        self.scalars.insert(key, Sourced { value, origin });
    }

    /// Records a list setting; an empty list is "not given" and is dropped so that a lower
    /// layer's value still applies.
    pub(crate) fn set_list(&mut self, key: Key, value: Vec<String>, origin: Origin) {
        debug_assert!(
            key.kind() == crate::keys::Kind::List,
            "{key:?} is not a list key"
        );
        if !value.is_empty() {
            self.lists.insert(key, Sourced { value, origin });
        }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&Sourced<String>> {
        self.scalars.get(&key)
    }

    pub(crate) fn get_list(&self, key: Key) -> Option<&Sourced<Vec<String>>> {
        self.lists.get(&key)
    }

    /// Layers `self` over `lower`: every key set here wins, whole (a list from a higher
    /// layer replaces the lower one rather than extending it).
    pub(crate) fn over(mut self, lower: RawConfig) -> RawConfig {
        for (key, value) in lower.scalars {
            self.scalars.entry(key).or_insert(value);
        }
        for (key, value) in lower.lists {
            self.lists.entry(key).or_insert(value);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Origin {
        Origin::Env(var.to_owned())
    }

    #[test]
    fn higher_layer_wins_and_lists_replace_whole() {
        let mut high = RawConfig::default();
        high.set(Key::Workers, "2".into(), Origin::Cli);
        high.set_list(Key::Bind, vec!["a:1".into()], Origin::Cli);
        let mut low = RawConfig::default();
        low.set(Key::Workers, "3".into(), env("CORRAL_WORKERS"));
        low.set(Key::Threads, "4".into(), env("CORRAL_THREADS"));
        low.set_list(
            Key::Bind,
            vec!["b:1".into(), "c:1".into()],
            env("CORRAL_BIND"),
        );
        let merged = high.over(low);
        assert_eq!(
            merged.get(Key::Workers).map(|s| s.value.as_str()),
            Some("2")
        );
        assert_eq!(
            merged.get(Key::Threads).map(|s| &s.origin),
            Some(&env("CORRAL_THREADS"))
        );
        assert_eq!(
            merged.get_list(Key::Bind).map(|s| s.value.clone()),
            Some(vec!["a:1".into()])
        );
    }

    #[test]
    fn empty_list_does_not_shadow_lower_layer() {
        let mut high = RawConfig::default();
        high.set_list(Key::Bind, vec![], Origin::Cli);
        let mut low = RawConfig::default();
        low.set_list(Key::Bind, vec!["b:1".into()], env("CORRAL_BIND"));
        assert_eq!(
            high.over(low).get_list(Key::Bind).map(|s| s.value.len()),
            Some(1)
        );
    }

    #[test]
    fn origins_describe_themselves() {
        let file = Origin::File {
            key: "max_body".into(),
            path: "/srv/corral.toml".into(),
        };
        assert_eq!(Origin::Cli.describe(Key::Workers), "--workers");
        assert_eq!(Origin::Cli.describe(Key::App), "the APP argument");
        assert_eq!(
            env("CORRAL_WORKERS").describe(Key::Workers),
            "CORRAL_WORKERS"
        );
        assert_eq!(file.describe(Key::MaxBody), "max_body in /srv/corral.toml");
        assert_eq!(Origin::Cli.show(Key::Threads, "4"), "--threads 4");
        assert_eq!(
            env("CORRAL_THREADS").show(Key::Threads, "4"),
            "CORRAL_THREADS=4"
        );
        assert_eq!(
            file.show(Key::MaxBody, "\"1\""),
            "max_body = \"1\" in /srv/corral.toml"
        );
    }
}
