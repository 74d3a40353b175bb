//! Parsing of the APP argument into an [`AppSpec`].

use std::path::Path;

use crate::config::{AppSpec, AppTarget};

/// The callable looked up when APP names none (mod_wsgi's convention).
const DEFAULT_CALLABLE: &str = "application";

/// Appended to every APP error so the user sees what a valid value looks like.
pub(crate) const APP_FORMS: &str = "valid forms are \"mypackage.wsgi:application\", \
\"mypackage.wsgi\" (callable \"application\"), \"mypackage:create_app()\" (factory) and \
\"path/to/app.py\" or \"path/to/app.py:application\"";

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// Parses an APP value. File targets are made absolute against `chdir` and must exist.
/// The error is a reason without the list of valid forms (see [`APP_FORMS`]).
pub(crate) fn parse_app(raw: &str, chdir: &Path) -> Result<AppSpec, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("the application is empty".to_owned());
    }
    let (target, callable) = match text.rsplit_once(':') {
        Some((target, callable)) => (target, Some(callable)),
        None => (text, None),
    };
    let (callable, factory) = match callable {
        None => (DEFAULT_CALLABLE.to_owned(), false),
        Some(c) => parse_callable(c)?,
    };
    Ok(AppSpec {
        raw: raw.to_owned(),
        target: parse_target(target, chdir)?,
        callable,
        factory,
    })
}

/// "name" or "name()" (a factory called once with no arguments).
fn parse_callable(text: &str) -> Result<(String, bool), String> {
    if text.is_empty() {
        return Err("nothing follows \":\"; name the callable, e.g. \":application\"".to_owned());
    }
    let (name, factory) = match text.strip_suffix("()") {
        Some(name) => (name, true),
        None => (text, false),
    };
    if let Some((name, _)) = name.split_once('(') {
        return Err(format!(
            "a factory is called with no arguments: write \"{name}()\" and read settings \
             inside it (e.g. from the environment)"
        ));
    }
    if !is_identifier(name) {
        return Err(format!(
            "{name:?} is not a valid callable name (one Python identifier, optionally \
             followed by \"()\")"
        ));
    }
    Ok((name.to_owned(), factory))
}

/// A path if it ends in ".py" or contains '/', otherwise a dotted module name.
fn parse_target(target: &str, chdir: &Path) -> Result<AppTarget, String> {
    if target.is_empty() {
        return Err("the module or file before \":\" is missing".to_owned());
    }
    if target.ends_with(".py") || target.contains('/') {
        let path = chdir.join(target);
        if !path.is_file() {
            return Err(format!("the app file {} does not exist", path.display()));
        }
        return Ok(AppTarget::File(path));
    }
    if !target.split('.').all(is_identifier) {
        return Err(format!(
            "{target:?} is not a valid Python module name (dotted identifiers such as \
             \"mypackage.wsgi\")"
        ));
    }
    Ok(AppTarget::Module(target.to_owned()))
}

/// A Python identifier that is not a keyword (so it can be imported or looked up).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first == '_' || first.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
        && !KEYWORDS.contains(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TempDir;

    fn module(raw: &str) -> AppSpec {
        parse_app(raw, Path::new("/nonexistent")).expect(raw)
    }

    #[test]
    fn module_with_callable() {
        let spec = module("pkg.mod:app");
        assert_eq!(spec.target, AppTarget::Module("pkg.mod".into()));
        assert_eq!((spec.callable.as_str(), spec.factory), ("app", false));
        assert_eq!(spec.raw, "pkg.mod:app");
    }

    #[test]
    fn module_alone_means_application() {
        let spec = module("pkg.mod");
        assert_eq!(spec.target, AppTarget::Module("pkg.mod".into()));
        assert_eq!(
            (spec.callable.as_str(), spec.factory),
            ("application", false)
        );
    }

    #[test]
    fn factory_call() {
        let spec = module("pkg.mod:create_app()");
        assert_eq!((spec.callable.as_str(), spec.factory), ("create_app", true));
        let err = parse_app("pkg:create_app(debug=True)", Path::new("/")).unwrap_err();
        assert!(err.contains("\"create_app()\""), "{err}");
    }

    #[test]
    fn file_forms_are_absolute_against_chdir() {
        let dir = TempDir::new("app-file");
        dir.write("site/app.py", "application = None\n");
        dir.write("wsgi.py", "application = None\n");
        let spec = parse_app("site/app.py", dir.path()).expect("file exists");
        assert_eq!(spec.target, AppTarget::File(dir.path().join("site/app.py")));
        assert_eq!(spec.callable, "application");
        let spec = parse_app("wsgi.py:app", dir.path()).expect("file exists");
        assert_eq!(spec.target, AppTarget::File(dir.path().join("wsgi.py")));
        assert_eq!(spec.callable, "app");
        let spec = parse_app("site/app.py:make()", dir.path()).expect("file exists");
        assert!(spec.factory);
    }

    #[test]
    fn missing_file_is_an_error() {
        let dir = TempDir::new("app-missing");
        let err = parse_app("nope.py", dir.path()).unwrap_err();
        assert!(
            err.contains(&dir.path().join("nope.py").display().to_string()),
            "{err}"
        );
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn invalid_names() {
        let at = Path::new("/");
        assert!(parse_app("my-app", at).unwrap_err().contains("module name"));
        assert!(parse_app("pkg..mod", at)
            .unwrap_err()
            .contains("module name"));
        assert!(parse_app("1pkg", at).unwrap_err().contains("module name"));
        assert!(parse_app("class.mod", at)
            .unwrap_err()
            .contains("module name"));
        assert!(parse_app("pkg:app.wsgi_app", at)
            .unwrap_err()
            .contains("callable"));
        assert!(parse_app("pkg:", at).unwrap_err().contains("callable"));
        assert!(parse_app(":app", at).unwrap_err().contains("missing"));
        assert!(parse_app("  ", at).unwrap_err().contains("empty"));
    }

    #[test]
    fn unicode_identifiers_are_python_identifiers() {
        assert_eq!(module("café:app").target, AppTarget::Module("café".into()));
    }
}
