//! Finding and importing the WSGI application.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Where the application lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource {
    /// An importable module (`package.module`).
    Module(String),
    /// A Python file, loaded under its stem as a module name (mod_wsgi's `WSGIScriptAlias` style).
    File(PathBuf),
}

/// The app to load: a module or file, the attribute to take, and whether to call it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    pub source: AppSource,
    pub callable: String,
    /// `module:create_app()`: call the attribute once, with no arguments, to get the app.
    pub factory: bool,
}

/// Imports the app and returns the WSGI callable. On failure the Python traceback has been
/// printed to stderr and the error is a one-line summary (`ModuleNotFoundError: …`).
pub fn load(app: &AppRef) -> Result<Py<PyAny>, String> {
    Python::attach(|py| {
        load_inner(py, app).map_err(|e| {
            let summary = summarize(py, &e);
            e.print(py);
            summary
        })
    })
}

fn load_inner(py: Python<'_>, app: &AppRef) -> PyResult<Py<PyAny>> {
    let module = match &app.source {
        AppSource::Module(name) => py.import(name.as_str())?.into_any(),
        AppSource::File(path) => import_file(py, path)?,
    };
    let mut obj = module.getattr(app.callable.as_str()).map_err(|_| {
        pyo3::exceptions::PyAttributeError::new_err(format!(
            "{} has no attribute {:?}; name the WSGI callable with APP:callable",
            describe(&app.source),
            app.callable
        ))
    })?;
    if app.factory {
        obj = obj.call0()?;
    }
    if !obj.is_callable() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{}:{} is {}, not a WSGI callable",
            describe(&app.source),
            app.callable,
            obj.get_type().name()?
        )));
    }
    Ok(obj.unbind())
}

fn describe(source: &AppSource) -> String {
    match source {
        AppSource::Module(m) => format!("module {m}"),
        AppSource::File(p) => format!("file {}", p.display()),
    }
}

/// Loads a file as a module named after its stem and registers it in `sys.modules`.
fn import_file<'py>(py: Python<'py>, path: &std::path::Path) -> PyResult<Bound<'py, PyAny>> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = if stem.is_empty() {
        "wsgi_app".to_string()
    } else {
        stem.replace(['-', '.'], "_")
    };
    let globals = PyDict::new(py);
    globals.set_item("name", &name)?;
    globals.set_item("path", path.to_string_lossy().as_ref())?;
    py.run(
        cr#"
import importlib.util, sys
spec = importlib.util.spec_from_file_location(name, path)
if spec is None or spec.loader is None:
    raise ImportError(f"cannot load {path} as Python source")
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
try:
    spec.loader.exec_module(module)
except BaseException:
    sys.modules.pop(name, None)
    raise
"#,
        Some(&globals),
        None,
    )?;
    globals.get_item("module")?.ok_or_else(|| {
        pyo3::exceptions::PyImportError::new_err(format!("cannot load {}", path.display()))
    })
}

/// The last line of a traceback: `ExceptionType: message`.
pub fn summarize(py: Python<'_>, err: &PyErr) -> String {
    let ty = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Error".into());
    let msg = err
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    if msg.is_empty() {
        ty
    } else {
        format!("{ty}: {msg}")
    }
}
