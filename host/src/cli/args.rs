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
