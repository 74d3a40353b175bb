//! Parsing of listen addresses (`-b/--bind`).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::config::Bind;

/// Longest Unix socket path the kernel accepts (`sun_path` is 108 bytes with the NUL).
const MAX_UNIX_PATH: usize = 107;

/// Parses "HOST:PORT", "[IPV6]:PORT" or "unix:PATH". The error is a reason with a
/// corrected example, without the value itself.
pub(crate) fn parse_bind(s: &str) -> Result<Bind, String> {
    let text = s.trim();
    if let Some(path) = text.strip_prefix("unix:") {
        return parse_unix(path);
    }
    if text.is_empty() {
        return Err("empty address; write e.g. \"127.0.0.1:8000\"".to_owned());
    }
    if let Some((scheme, rest)) = text.split_once("://") {
        return Err(format!(
            "no {scheme}:// prefix: write just HOST:PORT, e.g. {rest:?}"
        ));
    }
    if text.starts_with('/') {
        return Err(format!(
            "a Unix socket needs the unix: prefix: write \"unix:{text}\""
        ));
    }
    if let Some(rest) = text.strip_prefix('[') {
        return parse_bracketed_v6(rest);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "a port alone is not an address: write \"127.0.0.1:{text}\" (this machine only) \
             or \"0.0.0.0:{text}\" (all interfaces)"
        ));
    }
    if text.matches(':').count() > 1 {
        return Err(
            "IPv6 addresses go in brackets before the port, e.g. \"[::1]:8000\"".to_owned(),
        );
    }
    let Some((host, port)) = text.split_once(':') else {
        return Err(format!("missing port: write e.g. \"{text}:8000\""));
    };
    let port = parse_port(port)?;
    if host.is_empty() {
        return Err(format!(
            "missing host before \":{port}\": write \"127.0.0.1:{port}\" (this machine only) \
             or \"0.0.0.0:{port}\" (all interfaces)"
        ));
    }
    check_host(host)?;
    Ok(Bind::Tcp {
        host: host.to_owned(),
        port,
    })
}

fn parse_unix(path: &str) -> Result<Bind, String> {
    if path.is_empty() {
        return Err(
            "missing socket path after \"unix:\", e.g. \"unix:/run/corral.sock\"".to_owned(),
        );
    }
    if path.len() > MAX_UNIX_PATH {
        return Err(format!(
            "the socket path is {} bytes long but Unix sockets allow at most {MAX_UNIX_PATH}; \
             use a shorter path",
            path.len()
        ));
    }
    Ok(Bind::Unix(PathBuf::from(path)))
}

/// Parses what follows "[" in "[::1]:8000".
fn parse_bracketed_v6(rest: &str) -> Result<Bind, String> {
    let Some((host, after)) = rest.split_once(']') else {
        return Err("missing \"]\" after the IPv6 address, e.g. \"[::1]:8000\"".to_owned());
    };
    if host.parse::<Ipv6Addr>().is_err() {
        return Err(format!(
            "{host:?} is not an IPv6 address; e.g. \"[::1]:8000\""
        ));
    }
    let Some(port) = after.strip_prefix(':') else {
        return Err(format!(
            "missing port after \"]\": write e.g. \"[{host}]:8000\""
        ));
    };
    Ok(Bind::Tcp {
        host: host.to_owned(),
        port: parse_port(port)?,
    })
}

fn parse_port(port: &str) -> Result<u16, String> {
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(port);
        }
    }
    Err(format!(
        "port {port:?} must be a number between 0 and 65535"
    ))
}

/// Accepts IPv4 addresses and DNS host names.
fn check_host(host: &str) -> Result<(), String> {
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("{host:?} is not a valid IPv4 address")),
        };
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is not a valid host name or IP address; e.g. \"localhost:8000\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Bind {
        Bind::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn tcp_forms() {
        assert_eq!(parse_bind("127.0.0.1:8000"), Ok(tcp("127.0.0.1", 8000)));
        assert_eq!(parse_bind("localhost:8000"), Ok(tcp("localhost", 8000)));
        assert_eq!(parse_bind("0.0.0.0:80"), Ok(tcp("0.0.0.0", 80)));
        assert_eq!(parse_bind("127.0.0.1:0"), Ok(tcp("127.0.0.1", 0)));
        assert_eq!(
            parse_bind("app-1.example.com:443"),
            Ok(tcp("app-1.example.com", 443))
        );
    }

    #[test]
    fn ipv6_is_stored_without_brackets() {
        assert_eq!(parse_bind("[::1]:8000"), Ok(tcp("::1", 8000)));
        assert_eq!(parse_bind("[::]:80"), Ok(tcp("::", 80)));
        assert_eq!(parse_bind("[fe80::1]:0"), Ok(tcp("fe80::1", 0)));
    }

    #[test]
    fn unix_sockets() {
        assert_eq!(
            parse_bind("unix:/tmp/s.sock"),
            Ok(Bind::Unix("/tmp/s.sock".into()))
        );
        assert_eq!(
            parse_bind("unix:run/s.sock"),
            Ok(Bind::Unix("run/s.sock".into()))
        );
        assert!(parse_bind("unix:")
            .unwrap_err()
            .contains("missing socket path"));
        let long = format!("unix:/{}", "x".repeat(120));
        assert!(parse_bind(&long).unwrap_err().contains("at most 107"));
        assert!(parse_bind("/tmp/s.sock")
            .unwrap_err()
            .contains("\"unix:/tmp/s.sock\""));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "127.0.0.1:8000",
            "localhost:8000",
            "[::1]:8000",
            "unix:/tmp/s.sock",
        ] {
            assert_eq!(parse_bind(s).expect(s).to_string(), s);
        }
    }

    #[test]
    fn bare_port_suggests_loopback() {
        let err = parse_bind("8000").unwrap_err();
        assert!(err.contains("\"127.0.0.1:8000\""), "{err}");
    }

    #[test]
    fn missing_host_is_rejected() {
        let err = parse_bind(":8000").unwrap_err();
        assert!(
            err.contains("\"127.0.0.1:8000\"") && err.contains("0.0.0.0:8000"),
            "{err}"
        );
    }

    #[test]
    fn other_errors() {
        assert!(parse_bind("localhost")
            .unwrap_err()
            .contains("\"localhost:8000\""));
        assert!(parse_bind("::1:8000").unwrap_err().contains("brackets"));
        assert!(parse_bind("[::1]").unwrap_err().contains("missing port"));
        assert!(parse_bind("[::1:8000")
            .unwrap_err()
            .contains("missing \"]\""));
        assert!(parse_bind("[nope]:80").unwrap_err().contains("not an IPv6"));
        assert!(parse_bind("127.0.0.1:65536")
            .unwrap_err()
            .contains("between 0 and 65535"));
        assert!(parse_bind("127.0.0.1:http")
            .unwrap_err()
            .contains("between 0 and 65535"));
        assert!(parse_bind("127.0.0.300:80").unwrap_err().contains("IPv4"));
        assert!(parse_bind("bad_host:80").unwrap_err().contains("host name"));
        assert!(parse_bind("http://localhost:80")
            .unwrap_err()
            .contains("\"localhost:80\""));
        assert!(parse_bind("").is_err());
    }
}
