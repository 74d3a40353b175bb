//! THE mapping from what went wrong to what the client sees. Every status corral produces
//! itself (not the app) is built here, with a short text body that names a stable code.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::http::body::RespBody;

/// Errors the master answers on behalf of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request is malformed (framing, header syntax).
    BadRequest(&'static str),
    /// The request line is longer than `--limit-request-line`.
    UriTooLong,
    /// A header field is longer than `--limit-request-field-size`.
    HeaderTooLarge,
    /// The body is larger than `--max-body`.
    BodyTooLarge,
    /// `max_queue` requests already wait for a worker.
    QueueFull,
    /// The server is shutting down.
    ShuttingDown,
    /// The app raised before sending a header.
    AppError,
    /// The worker died (or broke the protocol) before the response head.
    WorkerLost,
    /// The client stalled inside its request head for `--header-timeout`.
    HeadTimeout,
}

/// The `Server` header value on every response corral writes.
pub const SERVER: &str = concat!("corral/", env!("CARGO_PKG_VERSION"));

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::UriTooLong => StatusCode::URI_TOO_LONG,
            Refusal::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::QueueFull | Refusal::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::AppError => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::WorkerLost => StatusCode::BAD_GATEWAY,
            Refusal::HeadTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Stable code for logs and bodies (C1xxx: client, C2xxx: capacity, C3xxx: app/worker).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "C1001",
            Refusal::UriTooLong => "C1002",
            Refusal::HeaderTooLarge => "C1003",
            Refusal::BodyTooLarge => "C1004",
            Refusal::QueueFull => "C2001",
            Refusal::ShuttingDown => "C2002",
            Refusal::AppError => "C3001",
            Refusal::WorkerLost => "C3002",
            Refusal::HeadTimeout => "C1005",
        }
    }

    fn explanation(self) -> &'static str {
        match self {
            Refusal::BadRequest(why) => why,
            Refusal::UriTooLong => "the request line is longer than the server allows",
            Refusal::HeaderTooLarge => "a request header is larger than the server allows",
            Refusal::BodyTooLarge => "the request body is larger than the server allows",
            Refusal::QueueFull => "all workers are busy and the queue is full; retry shortly",
            Refusal::ShuttingDown => "the server is shutting down",
            Refusal::AppError => "the application raised an error (see the server's error log)",
            Refusal::WorkerLost => "the worker handling the request died",
            Refusal::HeadTimeout => "the request head did not arrive in time",
        }
    }

    /// The connection cannot be trusted for another request after these.
    fn closes_connection(self) -> bool {
        matches!(
            self,
            Refusal::BadRequest(_)
                | Refusal::UriTooLong
                | Refusal::HeaderTooLarge
                | Refusal::BodyTooLarge
                | Refusal::HeadTimeout
        )
    }

    fn body_text(self) -> String {
        let status = self.status();
        format!(
            "{} {}: {} ({})\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            self.explanation(),
            self.code()
        )
    }

    pub fn response(self) -> Response<RespBody> {
        let status = self.status();
        let mut resp = Response::new(RespBody::full(Bytes::from(self.body_text())));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self == Refusal::QueueFull || self == Refusal::ShuttingDown {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.closes_connection() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

impl Refusal {
    /// The whole response as bytes, for the places that write to the socket without hyper;
    /// `date` is an IMF-fixdate. Always closes the connection.
    pub fn raw_reply(self, date: &str) -> Vec<u8> {
        let status = self.status();
        let body = self.body_text();
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n\
             server: {SERVER}\r\ncontent-length: {}\r\ndate: {date}\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len(),
        )
        .into_bytes()
    }
}

/// The current time as an HTTP date.
pub fn http_date_now() -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now())
}

/// hyper answers a request head it cannot parse by itself, with an empty body and without a
/// `Server` header: exactly `HTTP/1.1 <400|414|431> <reason>`, `connection: close`,
/// `content-length: 0` and a `date`, nothing after the head. Given bytes hyper is about to
/// write, returns corral's own reply for the same status (keeping hyper's date), or `None` when
/// the bytes are anything else.
pub fn replace_hyper_error_reply(bytes: &[u8]) -> Option<Vec<u8>> {
    let refusal = match bytes.get(..13)? {
        b"HTTP/1.1 400 " => Refusal::BadRequest("the request head is malformed"),
        b"HTTP/1.1 414 " => Refusal::UriTooLong,
        b"HTTP/1.1 431 " => Refusal::HeaderTooLarge,
        _ => return None,
    };
    let status_line_end = bytes.windows(2).position(|w| w == b"\r\n")? + 2;
    let rest = bytes[status_line_end..]
        .strip_prefix(b"connection: close\r\ncontent-length: 0\r\ndate: ".as_slice())?;
    let date = rest.strip_suffix(b"\r\n\r\n".as_slice())?;
    let date = std::str::from_utf8(date).ok()?;
    let looks_like_a_date = date.len() == 29 && date.ends_with(" GMT") && !date.contains('\r');
    looks_like_a_date.then(|| refusal.raw_reply(date))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_reply_is_framed_and_names_the_server() {
        let reply = Refusal::HeadTimeout.raw_reply("Tue, 24 Nov 2026 23:16:47 GMT");
        let text = String::from_utf8(reply).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 408 Request Timeout\r\n"));
        assert!(head.contains(&format!("\r\nserver: {SERVER}\r\n")));
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        assert!(body.contains("(C1005)"));
    }

    #[test]
    fn only_hyper_error_replies_are_replaced() {
        let date = "Tue, 24 Nov 2026 23:16:47 GMT";
        let hyper = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
             content-length: 0\r\ndate: {date}\r\n\r\n"
        );
        let ours = replace_hyper_error_reply(hyper.as_bytes()).unwrap();
        assert_eq!(ours, Refusal::HeaderTooLarge.raw_reply(date));
        let with_body = format!("{hyper}x");
        assert_eq!(replace_hyper_error_reply(with_body.as_bytes()), None);
        let other_status = hyper.replace("431", "404");
        assert_eq!(replace_hyper_error_reply(other_status.as_bytes()), None);
        assert_eq!(replace_hyper_error_reply(&ours), None);
    }

    #[test]
    fn codes_are_unique() {
        let all = [
            Refusal::BadRequest(""),
            Refusal::UriTooLong,
            Refusal::HeaderTooLarge,
            Refusal::BodyTooLarge,
            Refusal::QueueFull,
            Refusal::ShuttingDown,
            Refusal::AppError,
            Refusal::WorkerLost,
            Refusal::HeadTimeout,
        ];
        let mut codes: Vec<_> = all.iter().map(|r| r.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
