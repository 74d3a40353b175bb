//! RequestHead → WSGI environ (PEP 3333).
//!
//! Every value is a native `str`; bytes from the wire are decoded as latin-1, so an app can
//! recover them with `.encode("latin-1")`. Constant keys live in a per-thread template dict that
//! is copied per request; only the per-request keys are set one by one.

use corral_proto::RequestHead;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};

/// Facts about the worker that the environ reports, fixed for a worker's life.
#[derive(Debug, Clone, Copy)]
pub struct ProcessFacts {
    pub multithread: bool,
    pub multiprocess: bool,
}

/// The constant part of every environ, built once per slot thread.
pub fn template<'py>(
    py: Python<'py>,
    facts: ProcessFacts,
    file_wrapper: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let env = PyDict::new(py);
    env.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
    env.set_item(intern!(py, "wsgi.multithread"), facts.multithread)?;
    env.set_item(intern!(py, "wsgi.multiprocess"), facts.multiprocess)?;
    env.set_item(intern!(py, "wsgi.run_once"), false)?;
    env.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    env.set_item(intern!(py, "wsgi.file_wrapper"), file_wrapper)?;
    env.set_item(
        intern!(py, "SERVER_SOFTWARE"),
        concat!("corral/", env!("CARGO_PKG_VERSION")),
    )?;
    env.set_item(intern!(py, "SCRIPT_NAME"), "")?;
    // Keys every request sets get a placeholder here, so that the per-request copy is born
    // with a hash table big enough for them and the usual headers: setting them then replaces
    // a value instead of growing (resizing) the table.
    for key in PER_REQUEST_KEYS {
        env.set_item(PyString::intern(py, key), "")?;
    }
    Ok(env)
}

/// The keys `build` (and the WSGI call) always set.
const PER_REQUEST_KEYS: [&str; 14] = [
    "REQUEST_METHOD",
    "PATH_INFO",
    "QUERY_STRING",
    "RAW_URI",
    "REQUEST_URI",
    "SERVER_PROTOCOL",
    "wsgi.url_scheme",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_NAME",
    "SERVER_PORT",
    "wsgi.input",
    "wsgi.errors",
    "corral.request_id",
];

/// Decodes bytes as latin-1 (every byte is the code point of the same value).
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(s) if bytes.is_ascii() => PyString::new(py, s),
        _ => PyString::new(py, &bytes.iter().map(|&b| b as char).collect::<String>()),
    }
}

/// Undoes %XX escapes; a malformed escape is kept literally (as other servers do).
pub fn percent_decode(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// Splits `Host: name:port` (or `[v6]:port`) into its parts.
fn split_host(host: &[u8]) -> (&[u8], Option<&[u8]>) {
    if host.first() == Some(&b'[') {
        if let Some(end) = host.iter().position(|&c| c == b']') {
            let port = host[end + 1..].strip_prefix(b":");
            return (&host[1..end], port);
        }
    }
    match host.iter().rposition(|&c| c == b':') {
        Some(i) => (&host[..i], Some(&host[i + 1..])),
        None => (host, None),
    }
}

/// The CGI name of a header: `user-agent` → `HTTP_USER_AGENT`. `None` for names with `_`,
/// which could be used to spoof a header an app trusts (`X-Forwarded-For` vs
/// `X_Forwarded_For` both map to the same key); gunicorn drops them too.
fn cgi_name(name: &[u8]) -> Option<String> {
    if name.contains(&b'_') {
        return None;
    }
    match name {
        b"content-type" => return Some("CONTENT_TYPE".into()),
        b"content-length" => return Some("CONTENT_LENGTH".into()),
        _ => {}
    }
    let mut key = String::with_capacity(5 + name.len());
    key.push_str("HTTP_");
    for &c in name {
        key.push(if c == b'-' {
            '_'
        } else {
            (c as char).to_ascii_uppercase()
        });
    }
    Some(key)
}

/// Builds the environ of one request from the template.
pub fn build<'py>(
    py: Python<'py>,
    template: &Bound<'py, PyDict>,
    head: &RequestHead,
) -> PyResult<Bound<'py, PyDict>> {
    let env = template.copy()?;
    let target = &head.target[..];
    let (path, query) = match target.iter().position(|&c| c == b'?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &b""[..]),
    };
    let decoded = percent_decode(path);
    let script = &head.script_name[..];
    let path_info = decoded.strip_prefix(script).unwrap_or(&decoded);
    env.set_item(intern!(py, "REQUEST_METHOD"), latin1(py, &head.method))?;
    if !script.is_empty() {
        env.set_item(intern!(py, "SCRIPT_NAME"), latin1(py, script))?;
    }
    env.set_item(intern!(py, "PATH_INFO"), latin1(py, path_info))?;
    env.set_item(intern!(py, "QUERY_STRING"), latin1(py, query))?;
    env.set_item(intern!(py, "RAW_URI"), latin1(py, target))?;
    env.set_item(intern!(py, "REQUEST_URI"), latin1(py, target))?;
    let protocol = if head.version == 10 {
        intern!(py, "HTTP/1.0")
    } else {
        intern!(py, "HTTP/1.1")
    };
    env.set_item(intern!(py, "SERVER_PROTOCOL"), protocol)?;
    env.set_item(intern!(py, "wsgi.url_scheme"), latin1(py, &head.scheme))?;
    env.set_item(intern!(py, "REMOTE_ADDR"), latin1(py, &head.peer_ip))?;
    env.set_item(intern!(py, "REMOTE_PORT"), head.peer_port.to_string())?;
    set_server_name(py, &env, head)?;
    set_headers(py, &env, head)
}

fn set_server_name(py: Python<'_>, env: &Bound<'_, PyDict>, head: &RequestHead) -> PyResult<()> {
    let host = head
        .headers
        .iter()
        .find(|(n, _)| &n[..] == b"host")
        .map(|(_, v)| &v[..]);
    let default_port = if &head.scheme[..] == b"https" {
        "443"
    } else {
        "80"
    };
    let (name, port) = match host {
        Some(h) if !h.is_empty() => {
            let (name, port) = split_host(h);
            let port = match port {
                Some(p) if !p.is_empty() => latin1(py, p).into_any(),
                _ => default_port.into_bound_py_any(py)?,
            };
            (latin1(py, name).into_any(), port)
        }
        _ => (
            latin1(py, &head.local_ip).into_any(),
            head.local_port.to_string().into_bound_py_any(py)?,
        ),
    };
    env.set_item(intern!(py, "SERVER_NAME"), name)?;
    env.set_item(intern!(py, "SERVER_PORT"), port)
}

fn set_headers<'py>(
    py: Python<'py>,
    env: &Bound<'py, PyDict>,
    head: &RequestHead,
) -> PyResult<Bound<'py, PyDict>> {
    let mut merged: Vec<(String, Vec<u8>)> = Vec::with_capacity(head.headers.len());
    for (name, value) in &head.headers {
        let Some(key) = cgi_name(name) else { continue };
        match merged.iter_mut().find(|(k, _)| *k == key) {
            // RFC 9110 §5.3: repeated fields combine into one, comma separated.
            Some((_, v)) => {
                v.push(b',');
                v.extend_from_slice(value);
            }
            None => merged.push((key, value.to_vec())),
        }
    }
    for (key, value) in merged {
        env.set_item(key, latin1(py, &value))?;
    }
    Ok(env.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(&*percent_decode(b"/a%20b"), b"/a b");
        assert_eq!(&*percent_decode(b"/%E9t%c3%a9"), b"/\xe9t\xc3\xa9");
        assert_eq!(&*percent_decode(b"/bad%zz%4"), b"/bad%zz%4");
        assert_eq!(&*percent_decode(b"/%"), b"/%");
        assert_eq!(&*percent_decode(b"/plain"), b"/plain");
    }

    #[test]
    fn host_splitting() {
        assert_eq!(
            split_host(b"example.org:8080"),
            (&b"example.org"[..], Some(&b"8080"[..]))
        );
        assert_eq!(split_host(b"example.org"), (&b"example.org"[..], None));
        assert_eq!(split_host(b"[::1]:9"), (&b"::1"[..], Some(&b"9"[..])));
        assert_eq!(split_host(b"[::1]"), (&b"::1"[..], None));
    }

    #[test]
    fn cgi_names() {
        assert_eq!(cgi_name(b"user-agent").as_deref(), Some("HTTP_USER_AGENT"));
        assert_eq!(cgi_name(b"content-type").as_deref(), Some("CONTENT_TYPE"));
        assert_eq!(
            cgi_name(b"content-length").as_deref(),
            Some("CONTENT_LENGTH")
        );
        assert_eq!(cgi_name(b"x_forwarded_for"), None);
    }
}
