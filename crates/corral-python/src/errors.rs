//! `wsgi.errors` and traceback formatting: everything an app reports ends up in the error log,
//! tagged with the request id.

use pyo3::prelude::*;
use pyo3::types::PyString;

/// The `wsgi.errors` stream: a text file whose lines go to the error log.
#[pyclass(module = "corral")]
pub struct ErrorStream {
    request_id: u64,
    /// An incomplete last line, written out on the next newline or `flush()`.
    pending: String,
}

impl ErrorStream {
    pub fn new(request_id: u64) -> ErrorStream {
        ErrorStream {
            request_id,
            pending: String::new(),
        }
    }
}

#[pymethods]
impl ErrorStream {
    fn write(&mut self, s: &Bound<'_, PyAny>) -> PyResult<usize> {
        let text = s.cast::<PyString>()?.to_str()?;
        self.pending.push_str(text);
        while let Some(pos) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=pos).collect();
            tracing::error!(req = self.request_id, "{}", line.trim_end_matches('\n'));
        }
        Ok(text.chars().count())
    }

    fn writelines(&mut self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) {
        if !self.pending.is_empty() {
            tracing::error!(req = self.request_id, "{}", self.pending);
            self.pending.clear();
        }
    }
}

impl Drop for ErrorStream {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Logs `err` with its full traceback at ERROR level for request `request_id`.
pub fn log_exception(py: Python<'_>, request_id: u64, context: &str, err: &PyErr) {
    let text = format_traceback(py, err);
    tracing::error!(req = request_id, "{context}\n{}", text.trim_end());
}

/// The traceback of `err` as Python prints it.
pub fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        let args = (err.get_type(py), err.value(py), err.traceback(py));
        tb.call_method1("format_exception", args)
            .and_then(|lines| PyString::new(py, "").call_method1("join", (lines,)))
            .and_then(|s| s.extract::<String>())
    });
    formatted.unwrap_or_else(|_| crate::app::summarize(py, err))
}
