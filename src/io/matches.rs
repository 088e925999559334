//! Point matches as CSV: the header `x_a,y_a,x_b,y_b,score`, then one match per line, coordinates in 0-based
//! pixels of the original images (pixel centres at integers), numbers in Rust's shortest round-trip form (so
//! reading a written file gives back the same `f64` values).

use std::fmt::Write as _;
use std::path::Path;

use super::{read_limited, write_atomic};
use crate::matching::Match;
use crate::{Error, Result};

/// The header line.
pub const MATCHES_CSV_HEADER: &str = "x_a,y_a,x_b,y_b,score";

/// Largest match file read, in bytes (about 5 million matches of 50 bytes a line).
pub const MAX_MATCHES_FILE_BYTES: u64 = 256 << 20;

/// The CSV text of `matches`. Fails ([`Error::InvalidParam`]) on a non-finite value, which no reader could
/// use.
pub fn encode_matches_csv(matches: &[Match]) -> Result<String> {
    let mut out = String::with_capacity(16 + matches.len() * 48);
    out.push_str(MATCHES_CSV_HEADER);
    out.push('\n');
    for (i, m) in matches.iter().enumerate() {
        let v = [m.xa, m.ya, m.xb, m.yb, m.score];
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidParam {
                op: "matches csv",
                message: format!("match {i} has a non-finite value: {m:?}"),
            });
        }
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{},{},{},{},{}", v[0], v[1], v[2], v[3], v[4]);
    }
    Ok(out)
}

/// Writes `matches` to `path` atomically ([`write_atomic`]).
pub fn write_matches_csv(path: impl AsRef<Path>, matches: &[Match]) -> Result<()> {
    write_atomic(path.as_ref(), encode_matches_csv(matches)?.as_bytes())
}

/// Parses CSV text written by [`encode_matches_csv`] (or any file with that header and five finite numbers
/// per line; blank lines and `\r\n` endings are accepted). `path` names the file in errors.
pub fn parse_matches_csv(text: &str, path: &Path) -> Result<Vec<Match>> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, header)) if header.trim() == MATCHES_CSV_HEADER => {}
        _ => return Err(Error::format(path, format!("the first line must be the header `{MATCHES_CSV_HEADER}`"))),
    }
    lines
        .map(|(n, line)| {
            let values: Vec<f64> = line
                .split(',')
                .map(|t| t.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
                .collect::<Option<_>>()
                .filter(|v: &Vec<f64>| v.len() == 5)
                .ok_or_else(|| Error::format(path, format!("line {}: expected 5 finite numbers: `{line}`", n + 1)))?;
            Ok(Match { xa: values[0], ya: values[1], xb: values[2], yb: values[3], score: values[4] })
        })
        .collect()
}

/// Reads a match CSV file (a regular file of at most [`MAX_MATCHES_FILE_BYTES`]).
pub fn read_matches_csv(path: impl AsRef<Path>) -> Result<Vec<Match>> {
    let path = path.as_ref();
    let bytes = read_limited(path, MAX_MATCHES_FILE_BYTES)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::format(path, "not UTF-8 text"))?;
    parse_matches_csv(text, path)
}
