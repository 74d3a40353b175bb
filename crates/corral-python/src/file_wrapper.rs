//! `wsgi.file_wrapper`: an iterable over a file-like object, which the worker recognises and
//! turns into a file descriptor handed to the master, so the worker is free at once.

use pyo3::prelude::*;

#[pyclass(module = "corral", name = "FileWrapper")]
pub struct FileWrapper {
    pub(crate) filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = 8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> FileWrapper {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        if block.len()? == 0 {
            return Ok(None);
        }
        Ok(Some(block.unbind()))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr("close")? {
            f.call_method0("close")?;
        }
        Ok(())
    }
}

/// The file descriptor, start offset and size of a wrapped regular file, or `None` when the
/// file-like has no usable descriptor (then the wrapper is iterated like any other body).
pub(crate) fn regular_file(py: Python<'_>, wrapper: &FileWrapper) -> Option<(i32, u64, u64)> {
    let f = wrapper.filelike.bind(py);
    let fd: i32 = f.call_method0("fileno").ok()?.extract().ok()?;
    let os = py.import("os").ok()?;
    let st = os.call_method1("fstat", (fd,)).ok()?;
    let mode: u32 = st.getattr("st_mode").ok()?.extract().ok()?;
    if mode & 0o170000 != 0o100000 {
        return None;
    }
    let size: u64 = st.getattr("st_size").ok()?.extract().ok()?;
    let offset: u64 = match f.call_method0("tell") {
        Ok(t) => t.extract().ok()?,
        Err(_) => 0,
    };
    Some((fd, offset, size.saturating_sub(offset)))
}
