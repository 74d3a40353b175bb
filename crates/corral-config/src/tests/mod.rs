//! End-to-end tests of [`crate::parse_invocation`] and shared test helpers.
//!
//! The environment is always a closure over a map: no test sets a real variable.

mod cli;
mod precedence;
mod validation;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Config, ConfigError, Invocation};

/// A scratch directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "corral-config-test-{}-{n}-{label}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `rel`, creating parent directories.
    pub(crate) fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    pub(crate) fn mkdir(&self, rel: &str) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::create_dir_all(&path).expect("create dir");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `corral ARGS...` with exactly `vars` as the environment, in `cwd`.
pub(crate) fn run(
    args: &[&str],
    vars: &[(&str, &str)],
    cwd: &Path,
) -> Result<Invocation, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let names: Vec<String> = map.keys().cloned().collect();
    let argv = std::iter::once("corral").chain(args.iter().copied());
    crate::parse_with_env_names(argv, &|k| map.get(k).cloned(), &names, cwd)
}

/// `run`, expecting `serve` to succeed.
pub(crate) fn serve(args: &[&str], vars: &[(&str, &str)], cwd: &Path) -> Config {
    let mut full = vec!["serve"];
    full.extend_from_slice(args);
    match run(&full, vars, cwd) {
        Ok(Invocation::Serve(config)) => config,
        other => panic!("corral serve {args:?} with {vars:?}: {other:?}"),
    }
}

/// `run`, expecting `serve` to fail validation; returns the message.
pub(crate) fn serve_err(args: &[&str], vars: &[(&str, &str)], cwd: &Path) -> String {
    let mut full = vec!["serve"];
    full.extend_from_slice(args);
    match run(&full, vars, cwd) {
        Err(ConfigError::Invalid(msg)) => msg,
        other => panic!("expected a validation error for {args:?} with {vars:?}: {other:?}"),
    }
}
