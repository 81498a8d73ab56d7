//! Parsers for argument values shared by subcommands: sizes, durations and
//! module references.

use std::time::Duration;

/// Parses a size such as `64MiB`, `512KiB`, `1GiB`, `10MB` or `4096`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (try 64MiB)"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses a duration such as `10s`, `250ms` or `1m 30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration (try 10s): {e}"))
}

/// The parser of a duration option (`5s`, `1m`), refused outside
/// `min..=max` with an error that gives the range.
pub fn duration_in(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s| {
        let d = parse_duration(s)?;
        if (min..=max).contains(&d) {
            Ok(d)
        } else {
            Err(format!(
                "{s} is not from {} to {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ))
        }
    }
}

/// The parser of a size option (`64MiB`), refused outside `range` with an
/// error that gives the range in the unit it is written in (`show`).
pub fn size_in(
    range: std::ops::RangeInclusive<usize>,
    show: &'static str,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s| {
        let n = parse_size(s)?;
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(format!("{s} is not from {show}"))
        }
    }
}

/// `--memory-limit` of an attempt: 1 MiB to 4 GiB (a 32-bit memory's most).
pub fn memory_limit() -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    size_in((1 << 20)..=(4 << 30), "1MiB to 4GiB")
}

/// `--payload-limit`: 1 KiB to 256 MiB.
pub fn payload_limit() -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    size_in((1 << 10)..=MAX_PAYLOAD_LIMIT, "1KiB to 256MiB")
}

/// The largest `--payload-limit`: no payload, and so no JSON value a flag
/// takes, is larger.
pub const MAX_PAYLOAD_LIMIT: usize = 256 << 20;

/// `--cancel-grace` and `--shutdown-grace`: 0 s to 1 h.
pub fn grace() -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    duration_in(Duration::ZERO, Duration::from_secs(3600))
}

/// A rate in activities per second, within the API's rate range.
pub fn rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    let (min, max) = (
        crate::service::bounds::MIN_RATE,
        crate::service::bounds::MAX_RATE,
    );
    if (min..=max).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{s} is not from {min} to {max}"))
    }
}

/// Splits a module reference `NAME[@VERSION]` into name and version.
pub fn parse_module_ref(spec: &str) -> anyhow::Result<(&str, Option<u32>)> {
    match spec.split_once('@') {
        Some((name, v)) => {
            let version = v
                .parse::<u32>()
                .map_err(|_| anyhow::anyhow!("{spec:?}: the version after @ must be a number"))?;
            Ok((name, Some(version)))
        }
        None => Ok((spec, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn module_refs() {
        assert_eq!(parse_module_ref("greet").unwrap(), ("greet", None));
        assert_eq!(parse_module_ref("greet@3").unwrap(), ("greet", Some(3)));
        assert!(parse_module_ref("greet@latest").is_err());
    }
}
