//! The access log: Apache `LogFormat` directives, formatted off the request path by a writer
//! task that receives finished [`Record`]s over a channel.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

/// Apache's "combined" format, corral's default.
pub const COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i""#;

/// One part of a parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    RemoteHost,
    Dash,
    Time,
    RequestLine,
    Status,
    BytesClf,
    BytesNum,
    Header(usize),
    Micros,
    Seconds,
    Millis,
    LocalPort,
    WorkerPid,
    Method,
    Path,
    Query,
    Protocol,
}

/// A parsed `--access-log-format`.
#[derive(Debug, Clone)]
pub struct Format {
    pieces: Vec<Piece>,
    /// Request header names (lower case) that `%{Name}i` refers to, in index order.
    headers: Vec<String>,
}

impl Format {
    /// Parses Apache LogFormat directives; an unknown one is an error naming it.
    pub fn parse(fmt: &str) -> Result<Format, String> {
        let mut f = Format {
            pieces: Vec::new(),
            headers: Vec::new(),
        };
        let mut text = String::new();
        let mut chars = fmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            let mut arg = None;
            if chars.peek() == Some(&'{') {
                chars.next();
                let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                arg = Some(name);
            }
            if chars.peek() == Some(&'>') || chars.peek() == Some(&'<') {
                chars.next();
            }
            let d = chars.next().ok_or("access log format ends with a lone %")?;
            if d == '%' {
                text.push('%');
                continue;
            }
            if !text.is_empty() {
                f.pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            let piece = f.directive(d, arg)?;
            f.pieces.push(piece);
        }
        if !text.is_empty() {
            f.pieces.push(Piece::Text(text));
        }
        Ok(f)
    }

    fn directive(&mut self, d: char, arg: Option<String>) -> Result<Piece, String> {
        Ok(match (d, arg) {
            ('i', Some(name)) => {
                self.headers.push(name.to_ascii_lowercase());
                Piece::Header(self.headers.len() - 1)
            }
            ('h' | 'a', _) => Piece::RemoteHost,
            ('l' | 'u', _) => Piece::Dash,
            ('t', _) => Piece::Time,
            ('r', _) => Piece::RequestLine,
            ('s', _) => Piece::Status,
            ('b', _) => Piece::BytesClf,
            ('B', _) => Piece::BytesNum,
            ('D', _) => Piece::Micros,
            ('T', Some(u)) if u == "ms" => Piece::Millis,
            ('T', Some(u)) if u == "us" => Piece::Micros,
            ('T', _) => Piece::Seconds,
            ('p', _) => Piece::LocalPort,
            ('P', _) => Piece::WorkerPid,
            ('m', _) => Piece::Method,
            ('U', _) => Piece::Path,
            ('q', _) => Piece::Query,
            ('H', _) => Piece::Protocol,
            (other, _) => {
                return Err(format!(
                    "unknown access log directive %{other}; supported: %h %a %l %u %t %r %s %>s \
                     %b %B %D %T %p %P %m %U %q %H %{{Header}}i"
                ))
            }
        })
    }

    /// The request headers a record must capture for this format.
    pub fn header_names(&self) -> &[String] {
        &self.headers
    }

    pub fn render(&self, r: &Record, out: &mut String) {
        use std::fmt::Write as _;
        for p in &self.pieces {
            let _ = match p {
                Piece::Text(t) => write!(out, "{t}"),
                Piece::RemoteHost => write!(out, "{}", or_dash(&r.remote)),
                Piece::Dash => write!(out, "-"),
                Piece::Time => write!(out, "[{}]", clf_time(r.time)),
                Piece::RequestLine => {
                    write!(out, "{} {}{} {}", r.method, r.path, query(r), r.protocol)
                }
                Piece::Status => write!(out, "{}", r.status),
                Piece::BytesClf if r.bytes == 0 => write!(out, "-"),
                Piece::BytesClf | Piece::BytesNum => write!(out, "{}", r.bytes),
                Piece::Header(i) => {
                    write!(
                        out,
                        "{}",
                        r.headers.get(*i).and_then(|v| v.as_deref()).unwrap_or("-")
                    )
                }
                Piece::Micros => write!(out, "{}", r.duration.as_micros()),
                Piece::Millis => write!(out, "{}", r.duration.as_millis()),
                Piece::Seconds => write!(out, "{}", r.duration.as_secs()),
                Piece::LocalPort => write!(out, "{}", r.local_port),
                Piece::WorkerPid => write!(out, "{}", r.pid),
                Piece::Method => write!(out, "{}", r.method),
                Piece::Path => write!(out, "{}", r.path),
                Piece::Query => write!(out, "{}", query(r)),
                Piece::Protocol => write!(out, "{}", r.protocol),
            };
        }
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn query(r: &Record) -> String {
    if r.query.is_empty() {
        String::new()
    } else {
        format!("?{}", r.query)
    }
}

/// What the access log needs to know about one finished request.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub remote: String,
    pub time: Option<SystemTime>,
    pub method: String,
    pub path: String,
    pub query: String,
    pub protocol: &'static str,
    pub status: u16,
    pub bytes: u64,
    pub headers: Vec<Option<String>>,
    pub duration: Duration,
    pub local_port: u16,
    pub pid: u32,
}

/// `10/Oct/2000:13:55:36 +0000` (UTC).
pub fn clf_time(t: Option<SystemTime>) -> String {
    let secs = t
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The sending side, held by every request.
#[derive(Clone)]
pub struct AccessLog {
    pub format: std::sync::Arc<Format>,
    tx: mpsc::UnboundedSender<Record>,
}

impl AccessLog {
    /// Starts the writer task on `out` (stdout or a file).
    pub fn start(format: Format, mut out: Box<dyn Write + Send>) -> AccessLog {
        let (tx, mut rx) = mpsc::unbounded_channel::<Record>();
        let format = std::sync::Arc::new(format);
        let f = format.clone();
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            while let Some(r) = rx.blocking_recv() {
                line.clear();
                f.render(&r, &mut line);
                line.push('\n');
                // Batch whatever else is already waiting into the same write.
                while let Ok(r) = rx.try_recv() {
                    f.render(&r, &mut line);
                    line.push('\n');
                }
                if out
                    .write_all(line.as_bytes())
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    return;
                }
            }
        });
        AccessLog { format, tx }
    }

    pub fn log(&self, r: Record) {
        let _ = self.tx.send(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            remote: "127.0.0.1".into(),
            time: Some(UNIX_EPOCH + Duration::from_secs(1_764_022_440)),
            method: "GET".into(),
            path: "/a".into(),
            query: "x=1".into(),
            protocol: "HTTP/1.1",
            status: 200,
            bytes: 13,
            headers: vec![Some("http://ref/".into()), None],
            duration: Duration::from_micros(1234),
            local_port: 8000,
            pid: 42,
        }
    }

    #[test]
    fn combined_format() {
        let f = Format::parse(COMBINED).unwrap();
        assert_eq!(f.header_names(), ["referer", "user-agent"]);
        let mut s = String::new();
        f.render(&record(), &mut s);
        assert_eq!(
            s,
            r#"127.0.0.1 - - [24/Nov/2025:22:14:00 +0000] "GET /a?x=1 HTTP/1.1" 200 13 "http://ref/" "-""#
        );
    }

    #[test]
    fn other_directives() {
        let f = Format::parse("%D %T %p %P %% %B %{X-Test}i").unwrap();
        let mut r = record();
        r.bytes = 0;
        let mut s = String::new();
        f.render(&r, &mut s);
        assert_eq!(s, "1234 0 8000 42 % 0 http://ref/");
    }

    #[test]
    fn unknown_directive_is_an_error() {
        assert!(Format::parse("%Z").unwrap_err().contains("%Z"));
        assert!(Format::parse("abc %").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
