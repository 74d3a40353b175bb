//! RequestHead → WSGI environ (PEP 3333).
//!
//! Every value is a native `str`; bytes from the wire are decoded as latin-1, so an app can
//! recover them with `.encode("latin-1")`. Constant keys live in a per-thread template dict that
//! is copied per request; only the per-request keys are set one by one.

use bytes::Bytes;
use corral_proto::RequestHead;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

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

/// Decodes bytes as latin-1 (every byte is the code point of the same value), in one call
/// that both scans and copies them (a `&str` would be checked as UTF-8 first).
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    // SAFETY: the pointer and length describe `bytes`, alive for the whole call, which copies
    // them; `py` proves the thread holds the GIL. Latin-1 decoding accepts every byte, so a
    // null result means only that memory ran out, which `from_owned_ptr` reports by panicking,
    // as `PyString::new` does. The result is a new reference to a `str`, hence the cast.
    unsafe {
        let ptr = pyo3::ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr().cast(),
            bytes.len() as pyo3::ffi::Py_ssize_t,
            std::ptr::null(),
        );
        Bound::from_owned_ptr(py, ptr).cast_into_unchecked()
    }
}

/// The method as a `str`: the usual ones interned, made once per process.
fn method<'py>(py: Python<'py>, method: &[u8]) -> Bound<'py, PyString> {
    let known = match method {
        b"GET" => intern!(py, "GET"),
        b"POST" => intern!(py, "POST"),
        b"HEAD" => intern!(py, "HEAD"),
        b"PUT" => intern!(py, "PUT"),
        b"DELETE" => intern!(py, "DELETE"),
        b"PATCH" => intern!(py, "PATCH"),
        b"OPTIONS" => intern!(py, "OPTIONS"),
        other => return latin1(py, other),
    };
    known.clone()
}

/// A port number as a `str`, formatted without an intermediate `String`.
fn decimal(py: Python<'_>, n: u16) -> Bound<'_, PyString> {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    latin1(py, &digits[start..])
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

/// The CGI name of a header: `user-agent` → `HTTP_USER_AGENT`, written into `key`. False for
/// names with `_`, which could be used to spoof a header an app trusts (`X-Forwarded-For` vs
/// `X_Forwarded_For` both map to the same key); gunicorn drops them too.
fn cgi_name(name: &[u8], key: &mut String) -> bool {
    if name.contains(&b'_') {
        return false;
    }
    key.clear();
    match name {
        b"content-type" => key.push_str("CONTENT_TYPE"),
        b"content-length" => key.push_str("CONTENT_LENGTH"),
        _ => {
            key.push_str("HTTP_");
            key.extend(name.iter().map(|&c| match c {
                b'-' => '_',
                c => (c as char).to_ascii_uppercase(),
            }));
        }
    }
    true
}

/// The environ key of a header clients send often, as an interned string (its hash is cached,
/// so the dict does not compute it per request); `None` for the others.
fn common_key<'py>(py: Python<'py>, name: &[u8]) -> Option<&'py Bound<'py, PyString>> {
    Some(match name {
        b"host" => intern!(py, "HTTP_HOST"),
        b"user-agent" => intern!(py, "HTTP_USER_AGENT"),
        b"accept" => intern!(py, "HTTP_ACCEPT"),
        b"accept-encoding" => intern!(py, "HTTP_ACCEPT_ENCODING"),
        b"accept-language" => intern!(py, "HTTP_ACCEPT_LANGUAGE"),
        b"connection" => intern!(py, "HTTP_CONNECTION"),
        b"content-type" => intern!(py, "CONTENT_TYPE"),
        b"content-length" => intern!(py, "CONTENT_LENGTH"),
        b"cookie" => intern!(py, "HTTP_COOKIE"),
        b"referer" => intern!(py, "HTTP_REFERER"),
        b"origin" => intern!(py, "HTTP_ORIGIN"),
        b"authorization" => intern!(py, "HTTP_AUTHORIZATION"),
        b"cache-control" => intern!(py, "HTTP_CACHE_CONTROL"),
        b"x-forwarded-for" => intern!(py, "HTTP_X_FORWARDED_FOR"),
        b"x-forwarded-proto" => intern!(py, "HTTP_X_FORWARDED_PROTO"),
        b"x-forwarded-host" => intern!(py, "HTTP_X_FORWARDED_HOST"),
        b"x-real-ip" => intern!(py, "HTTP_X_REAL_IP"),
        b"x-request-id" => intern!(py, "HTTP_X_REQUEST_ID"),
        b"if-none-match" => intern!(py, "HTTP_IF_NONE_MATCH"),
        b"if-modified-since" => intern!(py, "HTTP_IF_MODIFIED_SINCE"),
        _ => return None,
    })
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
    env.set_item(intern!(py, "REQUEST_METHOD"), method(py, &head.method))?;
    if !script.is_empty() {
        env.set_item(intern!(py, "SCRIPT_NAME"), latin1(py, script))?;
    }
    env.set_item(intern!(py, "PATH_INFO"), latin1(py, path_info))?;
    env.set_item(intern!(py, "QUERY_STRING"), latin1(py, query))?;
    let target = latin1(py, target);
    env.set_item(intern!(py, "RAW_URI"), &target)?;
    env.set_item(intern!(py, "REQUEST_URI"), target)?;
    let protocol = if head.version == 10 {
        intern!(py, "HTTP/1.0")
    } else {
        intern!(py, "HTTP/1.1")
    };
    env.set_item(intern!(py, "SERVER_PROTOCOL"), protocol)?;
    let scheme = match &head.scheme[..] {
        b"http" => intern!(py, "http").clone(),
        b"https" => intern!(py, "https").clone(),
        other => latin1(py, other),
    };
    env.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    env.set_item(intern!(py, "REMOTE_ADDR"), latin1(py, &head.peer_ip))?;
    env.set_item(intern!(py, "REMOTE_PORT"), decimal(py, head.peer_port))?;
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
        intern!(py, "443")
    } else {
        intern!(py, "80")
    };
    let (name, port) = match host {
        Some(h) if !h.is_empty() => {
            let (name, port) = split_host(h);
            let port = match port {
                Some(p) if !p.is_empty() => latin1(py, p).into_any(),
                _ => default_port.clone().into_any(),
            };
            (latin1(py, name).into_any(), port)
        }
        _ => (
            latin1(py, &head.local_ip).into_any(),
            decimal(py, head.local_port).into_any(),
        ),
    };
    env.set_item(intern!(py, "SERVER_NAME"), name)?;
    env.set_item(intern!(py, "SERVER_PORT"), port)
}

/// One key per header name. RFC 9110 §5.3: repeated fields combine into one, comma
/// separated, under the first one's place; the value is built apart only then.
fn set_headers<'py>(
    py: Python<'py>,
    env: &Bound<'py, PyDict>,
    head: &RequestHead,
) -> PyResult<Bound<'py, PyDict>> {
    let headers = &head.headers[..];
    let mut key = String::new();
    for (i, (name, value)) in headers.iter().enumerate() {
        let same_name = |(n, _): &(Bytes, Bytes)| n == name;
        if headers[..i].iter().any(same_name) {
            continue; // joined to the first of its name
        }
        let value = match headers[i + 1..].iter().filter(|h| same_name(h)).count() {
            0 => latin1(py, value),
            _ => {
                let repeats = headers[i..].iter().filter(|h| same_name(h));
                let joined = repeats.map(|(_, v)| &v[..]).collect::<Vec<_>>().join(&b',');
                latin1(py, &joined)
            }
        };
        match common_key(py, name) {
            Some(k) => env.set_item(k, value)?,
            None if cgi_name(name, &mut key) => env.set_item(&key, value)?,
            None => {}
        }
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

    fn cgi(name: &[u8]) -> Option<String> {
        let mut key = "stale".to_string();
        cgi_name(name, &mut key).then_some(key)
    }

    #[test]
    fn cgi_names() {
        assert_eq!(cgi(b"user-agent").as_deref(), Some("HTTP_USER_AGENT"));
        assert_eq!(cgi(b"content-type").as_deref(), Some("CONTENT_TYPE"));
        assert_eq!(cgi(b"content-length").as_deref(), Some("CONTENT_LENGTH"));
        assert_eq!(cgi(b"x_forwarded_for"), None);
    }

    /// Every common key is what `cgi_name` would have made: the table only saves the work.
    #[test]
    fn common_keys_are_their_cgi_names() {
        let names: [&[u8]; 20] = [
            b"host",
            b"user-agent",
            b"accept",
            b"accept-encoding",
            b"accept-language",
            b"connection",
            b"content-type",
            b"content-length",
            b"cookie",
            b"referer",
            b"origin",
            b"authorization",
            b"cache-control",
            b"x-forwarded-for",
            b"x-forwarded-proto",
            b"x-forwarded-host",
            b"x-real-ip",
            b"x-request-id",
            b"if-none-match",
            b"if-modified-since",
        ];
        Python::initialize();
        Python::attach(|py| {
            for name in names {
                let key = common_key(py, name).expect("a common name").to_string();
                assert_eq!(Some(key), cgi(name), "{}", String::from_utf8_lossy(name));
            }
            assert!(common_key(py, b"x-custom").is_none());
        });
    }

    #[test]
    fn ports_in_decimal() {
        Python::initialize();
        Python::attach(|py| {
            for n in [0, 7, 80, 65535] {
                assert_eq!(decimal(py, n).to_string(), n.to_string());
            }
        });
    }
}
