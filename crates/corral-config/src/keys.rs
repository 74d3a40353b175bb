//! The option names shared by the command line, the environment and the config file, so the
//! three sources cannot drift apart.

/// One configurable setting (everything except `--config` itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    App,
    Bind,
    Backlog,
    Mpm,
    Workers,
    Threads,
    MaxQueue,
    GracefulTimeout,
    Scheduling,
    Chdir,
    Pythonpath,
    Virtualenv,
    Preload,
    Warmup,
    MaxBody,
    BodyBuffer,
    KeepaliveTimeout,
    HeaderTimeout,
    SendTimeout,
    LimitRequestLine,
    LimitRequestFields,
    LimitRequestFieldSize,
    AccessLog,
    AccessLogFormat,
    ErrorLog,
    LogLevel,
}

/// What shape of value a key takes; decides which TOML types a config file may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Free text (a name, a path, a format).
    Text,
    /// Repeatable: several values, in order.
    List,
    /// A whole number.
    Int,
    /// A byte size such as "10MiB" (an integer means bytes).
    Size,
    /// A duration such as "30s" (an integer means seconds).
    Duration,
    /// On or off.
    Bool,
}

/// The environment variable naming the config file; not a [`Key`] because it selects the
/// file rather than a setting inside it.
pub(crate) const CONFIG_ENV: &str = "CORRAL_CONFIG";

impl Key {
    pub(crate) const ALL: [Key; 26] = [
        Key::App,
        Key::Bind,
        Key::Backlog,
        Key::Mpm,
        Key::Workers,
        Key::Threads,
        Key::MaxQueue,
        Key::GracefulTimeout,
        Key::Scheduling,
        Key::Chdir,
        Key::Pythonpath,
        Key::Virtualenv,
        Key::Preload,
        Key::Warmup,
        Key::MaxBody,
        Key::BodyBuffer,
        Key::KeepaliveTimeout,
        Key::HeaderTimeout,
        Key::SendTimeout,
        Key::LimitRequestLine,
        Key::LimitRequestFields,
        Key::LimitRequestFieldSize,
        Key::AccessLog,
        Key::AccessLogFormat,
        Key::ErrorLog,
        Key::LogLevel,
    ];

    /// The long option name, which is also the config file key (kebab-case).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Key::App => "app",
            Key::Bind => "bind",
            Key::Backlog => "backlog",
            Key::Mpm => "mpm",
            Key::Workers => "workers",
            Key::Threads => "threads",
            Key::MaxQueue => "max-queue",
            Key::GracefulTimeout => "graceful-timeout",
            Key::Scheduling => "scheduling",
            Key::Chdir => "chdir",
            Key::Pythonpath => "pythonpath",
            Key::Virtualenv => "virtualenv",
            Key::Preload => "preload",
            Key::Warmup => "warmup",
            Key::MaxBody => "max-body",
            Key::BodyBuffer => "body-buffer",
            Key::KeepaliveTimeout => "keepalive-timeout",
            Key::HeaderTimeout => "header-timeout",
            Key::SendTimeout => "send-timeout",
            Key::LimitRequestLine => "limit-request-line",
            Key::LimitRequestFields => "limit-request-fields",
            Key::LimitRequestFieldSize => "limit-request-field-size",
            Key::AccessLog => "access-log",
            Key::AccessLogFormat => "access-log-format",
            Key::ErrorLog => "error-log",
            Key::LogLevel => "log-level",
        }
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Key::Bind | Key::Pythonpath | Key::Warmup => Kind::List,
            Key::Backlog
            | Key::Workers
            | Key::Threads
            | Key::MaxQueue
            | Key::LimitRequestLine
            | Key::LimitRequestFields
            | Key::LimitRequestFieldSize => Kind::Int,
            Key::MaxBody | Key::BodyBuffer => Kind::Size,
            Key::GracefulTimeout
            | Key::KeepaliveTimeout
            | Key::HeaderTimeout
            | Key::SendTimeout => Kind::Duration,
            Key::Preload => Kind::Bool,
            Key::App
            | Key::Mpm
            | Key::Scheduling
            | Key::Chdir
            | Key::Virtualenv
            | Key::AccessLog
            | Key::AccessLogFormat
            | Key::ErrorLog
            | Key::LogLevel => Kind::Text,
        }
    }

    /// `CORRAL_` + the long name upper-cased with underscores: `CORRAL_MAX_BODY`.
    pub(crate) fn env_var(self) -> String {
        format!(
            "CORRAL_{}",
            self.name().to_ascii_uppercase().replace('-', "_")
        )
    }

    /// How a list value is split when it comes from one environment variable: binds by
    /// commas, search paths by colons like PYTHONPATH itself.
    pub(crate) fn env_separator(self) -> char {
        match self {
            Key::Pythonpath => ':',
            _ => ',',
        }
    }

    /// Looks a config-file key up, accepting snake_case as well as kebab-case.
    pub(crate) fn from_file_key(key: &str) -> Option<Key> {
        let kebab = key.replace('_', "-");
        Key::ALL.into_iter().find(|k| k.name() == kebab)
    }
}

/// The candidate most similar to `given`, if any is similar enough to be a likely typo.
pub(crate) fn closest<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&given, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip_through_file_keys() {
        for key in Key::ALL {
            assert_eq!(Key::from_file_key(key.name()), Some(key));
            assert_eq!(Key::from_file_key(&key.name().replace('-', "_")), Some(key));
        }
        let mut names: Vec<_> = Key::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Key::ALL.len());
    }

    #[test]
    fn env_var_names() {
        assert_eq!(Key::MaxBody.env_var(), "CORRAL_MAX_BODY");
        assert_eq!(
            Key::LimitRequestFieldSize.env_var(),
            "CORRAL_LIMIT_REQUEST_FIELD_SIZE"
        );
        assert_eq!(Key::App.env_var(), "CORRAL_APP");
    }

    #[test]
    fn closest_suggests_only_near_misses() {
        let names = Key::ALL.map(Key::name);
        assert_eq!(closest("workres", names), Some("workers"));
        assert_eq!(closest("max_body", names), Some("max-body"));
        assert_eq!(closest("zzzzzz", names), None);
    }
}
