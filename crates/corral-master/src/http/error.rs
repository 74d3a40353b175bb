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
}

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
        )
    }

    pub fn response(self) -> Response<RespBody> {
        let status = self.status();
        let text = format!(
            "{} {}: {} ({})\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            self.explanation(),
            self.code()
        );
        let mut resp = Response::new(RespBody::full(Bytes::from(text)));
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

/// The reply written straight to the socket when a client stalls inside its request head.
pub const REQUEST_TIMEOUT_REPLY: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 69\r\n\r\n\
408 Request Timeout: the request head did not arrive in time (C1005)\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_reply_length_is_right() {
        let split = REQUEST_TIMEOUT_REPLY
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap();
        assert_eq!(REQUEST_TIMEOUT_REPLY.len() - split - 4, 69);
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
        ];
        let mut codes: Vec<_> = all.iter().map(|r| r.code()).collect();
        codes.push("C1005");
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len() + 1);
    }
}
