//! Value parsers shared by every source: durations, byte sizes, booleans, bounded integers.
//! They return a short reason on error; the caller adds which flag/variable/key it was.

use std::time::Duration;

const DURATION_HELP: &str =
    "use a number with a unit, e.g. \"500ms\", \"30s\", \"2m\", \"1h\" or \"1m30s\"; a bare number means seconds";

const SIZE_HELP: &str = "use a number with a unit, e.g. \"64KiB\", \"10MiB\", \"1GiB\" (binary), \
\"10MB\", \"1GB\" (decimal) or \"64k\", \"10m\", \"1g\" (binary); a bare number means bytes";

const TOO_LONG: &str = "too large for a duration";
const TOO_BIG: &str = "too large for a size";

/// Parses a duration: "500ms", "30s", "2m", "1h", combinations such as "1m30s", or a bare
/// whole number of seconds (as gunicorn's options take them).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err(format!("empty duration; {DURATION_HELP}"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let secs = text.parse::<u64>().map_err(|_| TOO_LONG.to_owned())?;
        return Ok(Duration::from_secs(secs));
    }
    let bad = || format!("not a valid duration; {DURATION_HELP}");
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_len = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || unit_len == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let part = match &rest[digits..digits + unit_len] {
            "ms" => Some(Duration::from_millis(number)),
            "s" => Some(Duration::from_secs(number)),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            _ => return Err(bad()),
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| TOO_LONG.to_owned())?;
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// Parses a byte size: IEC units ("64KiB", "10MiB", "1GiB", "1TiB"), SI units ("10kB",
/// "10MB", "1GB", "1TB"), nginx-style single letters ("64k", "10m", "1g", binary), an
/// optional "B", or a bare number of bytes. Units are case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err(format!("empty size; {SIZE_HELP}"));
    }
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("not a valid size; {SIZE_HELP}"));
    }
    let number: u64 = text[..digits].parse().map_err(|_| TOO_BIG.to_owned())?;
    let unit = text[digits..].trim_start().to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(format!("not a valid size; {SIZE_HELP}")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| TOO_BIG.to_owned())
}

/// Parses an on/off value as environment variables and strings write it.
pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false (also accepted: 1/0, yes/no, on/off)".to_owned()),
    }
}

/// Parses a whole number within `min..=max`.
pub(crate) fn parse_int_in(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let text = s.trim();
    let in_range = format!("between {min} and {max}");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("must be a whole number {in_range}"));
    }
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be {in_range}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(secs(120)));
        assert_eq!(parse_duration("1h"), Ok(secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(secs(90)));
        assert_eq!(
            parse_duration("1h2m3s4ms"),
            Ok(Duration::from_millis(3_723_004))
        );
        assert_eq!(parse_duration(" 5s "), Ok(secs(5)));
    }

    #[test]
    fn bare_duration_is_seconds() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30"), Ok(secs(30)));
    }

    #[test]
    fn duration_errors() {
        for bad in ["", "s", "30x", "1.5s", "-1s", "30 s", "m30", "30S", "1d"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("30s"), "{bad}: {err}");
        }
        assert!(parse_duration("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_duration("18446744073709551615h")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn sizes_binary_decimal_and_nginx() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("10kB"), Ok(10_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("10 MiB"), Ok(10 << 20));
    }

    #[test]
    fn bare_size_is_bytes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
    }

    #[test]
    fn size_errors() {
        for bad in ["", "MiB", "10XB", "1.5GiB", "-1", "ten"] {
            let err = parse_size(bad).expect_err(bad);
            assert!(err.contains("10MiB"), "{bad}: {err}");
        }
        assert!(parse_size("17179869184GiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn bools() {
        for yes in ["true", "1", "yes", "on", "TRUE", " Yes "] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes}");
        }
        for no in ["false", "0", "no", "off", "False"] {
            assert_eq!(parse_bool(no), Ok(false), "{no}");
        }
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn bounded_ints() {
        assert_eq!(parse_int_in("4", 1, 1024), Ok(4));
        assert_eq!(
            parse_int_in("0", 1, 1024),
            Err("must be between 1 and 1024".into())
        );
        assert_eq!(
            parse_int_in("1025", 1, 1024),
            Err("must be between 1 and 1024".into())
        );
        assert_eq!(
            parse_int_in("-1", 1, 9),
            Err("must be a whole number between 1 and 9".into())
        );
        assert_eq!(
            parse_int_in("4.0", 1, 9),
            Err("must be a whole number between 1 and 9".into())
        );
        assert_eq!(
            parse_int_in("99999999999999999999", 1, 9),
            Err("must be between 1 and 9".into())
        );
    }
}
