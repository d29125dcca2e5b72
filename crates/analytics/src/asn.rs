//! IP → internet service provider (autonomous system number and organisation), from the
//! `@ip-location-db/asn` data (RouteViews and DB-IP, CC BY 4.0) turned by `passme geo import` into
//! a compact sorted range table: one binary search per lookup, IPv4 and IPv6, about 10 MB in
//! memory for the whole Internet.
//!
//! File layout (little-endian): magic, the source's version, the organisation table (ASN and
//! name), then the IPv4 ranges (start, end, organisation index) and the IPv6 ranges likewise.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::path::Path;

const MAGIC: &[u8; 6] = b"PMASN\x01";
/// The file name `passme geo import` writes in the data folder and `serve` looks for.
pub const FILE_NAME: &str = "asn.pmasn";

#[derive(Debug, thiserror::Error)]
pub enum AsnError {
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Csv { path: String, line: usize, message: String },
    #[error("{0}: not an ASN table written by `passme geo import` (or truncated)")]
    Format(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isp {
    pub asn: u32,
    pub name: String,
}

#[derive(Debug, Default)]
pub struct AsnTable {
    pub source: String,
    /// Overlapping ranges cut by the import (the data has a few).
    pub overlaps: usize,
    orgs: Vec<(u32, Box<str>)>,
    v4: Ranges<u32>,
    v6: Ranges<u128>,
}

#[derive(Debug, Default)]
struct Ranges<T> {
    starts: Vec<T>,
    ends: Vec<T>,
    orgs: Vec<u32>,
}

impl<T: Copy + Ord> Ranges<T> {
    fn find(&self, ip: T) -> Option<u32> {
        let i = self.starts.partition_point(|start| *start <= ip).checked_sub(1)?;
        (ip <= self.ends[i]).then(|| self.orgs[i])
    }

    fn push(&mut self, start: T, end: T, org: u32) {
        self.starts.push(start);
        self.ends.push(end);
        self.orgs.push(org);
    }

    /// Sorts by start and resolves overlaps in favour of the range starting later (the more
    /// specific one in the data seen), splitting an enclosing range around it, so every address
    /// has one answer. Returns how many ranges were cut.
    fn seal(&mut self) -> usize
    where
        T: Successor,
    {
        let mut ranges: Vec<(T, T, u32)> = (0..self.starts.len()).map(|i| (self.starts[i], self.ends[i], self.orgs[i])).collect();
        ranges.sort_by_key(|r| (r.0, r.1));
        let mut out: Vec<(T, T, u32)> = Vec::with_capacity(ranges.len());
        let mut cut = 0;
        let mut pending = std::collections::VecDeque::from(ranges);
        while let Some(next) = pending.pop_front() {
            if let Some(prev) = out.last_mut()
                && next.0 <= prev.1
            {
                cut += 1;
                let (old_end, enclosing) = (prev.1, prev.2);
                match next.0.before() {
                    Some(end) if end >= prev.0 => prev.1 = end,
                    _ => {
                        out.pop();
                    }
                }
                if let Some(after) = next.1.after().filter(|a| *a <= old_end) {
                    let tail = (after, old_end, enclosing);
                    let at = pending.partition_point(|r| (r.0, r.1) < (tail.0, tail.1));
                    pending.insert(at, tail);
                }
            }
            out.push(next);
        }
        self.starts = out.iter().map(|r| r.0).collect();
        self.ends = out.iter().map(|r| r.1).collect();
        self.orgs = out.iter().map(|r| r.2).collect();
        cut
    }
}

/// Neighbouring addresses, for splitting ranges.
trait Successor: Sized {
    fn before(self) -> Option<Self>;
    fn after(self) -> Option<Self>;
}

impl Successor for u32 {
    fn before(self) -> Option<u32> {
        self.checked_sub(1)
    }
    fn after(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Successor for u128 {
    fn before(self) -> Option<u128> {
        self.checked_sub(1)
    }
    fn after(self) -> Option<u128> {
        self.checked_add(1)
    }
}

impl AsnTable {
    pub fn lookup(&self, ip: IpAddr) -> Option<Isp> {
        let org = match ip {
            IpAddr::V4(v4) => self.v4.find(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.v4.find(u32::from(v4)),
                None => self.v6.find(u128::from(v6)),
            },
        }?;
        let (asn, name) = &self.orgs[org as usize];
        Some(Isp { asn: *asn, name: name.to_string() })
    }

    pub fn len(&self) -> (usize, usize) {
        (self.v4.starts.len(), self.v6.starts.len())
    }

    pub fn is_empty(&self) -> bool {
        self.v4.starts.is_empty() && self.v6.starts.is_empty()
    }

    /// Reads the npm package folder (`asn-ipv4-num.csv`, `asn-ipv6-num.csv`, `package.json`).
    pub fn import(package_dir: &Path) -> Result<AsnTable, AsnError> {
        let mut table = AsnTable { source: package_version(package_dir), ..AsnTable::default() };
        let mut org_index = std::collections::HashMap::<(u32, String), u32>::new();
        for (file, v6) in [("asn-ipv4-num.csv", false), ("asn-ipv6-num.csv", true)] {
            let path = package_dir.join(file);
            let shown = path.display().to_string();
            let reader = BufReader::new(std::fs::File::open(&path).map_err(|cause| AsnError::Io { path: shown.clone(), cause })?);
            for (n, line) in reader.lines().enumerate() {
                let line = line.map_err(|cause| AsnError::Io { path: shown.clone(), cause })?;
                if line.trim().is_empty() {
                    continue;
                }
                let bad = |message: String| AsnError::Csv { path: shown.clone(), line: n + 1, message };
                let fields = split_csv(&line);
                let [start, end, asn, name] = fields.as_slice() else {
                    return Err(bad(format!("expected 4 fields, found {}", fields.len())));
                };
                let asn: u32 = asn.parse().map_err(|_| bad(format!("bad ASN {asn:?}")))?;
                let next = u32::try_from(org_index.len()).map_err(|_| bad("too many organisations".into()))?;
                let org = *org_index.entry((asn, name.clone())).or_insert_with(|| {
                    table.orgs.push((asn, name.as_str().into()));
                    next
                });
                if v6 {
                    let (s, e) = (start.parse::<u128>(), end.parse::<u128>());
                    let (Ok(s), Ok(e)) = (s, e) else { return Err(bad("bad IPv6 range".into())) };
                    table.v6.push(s, e, org);
                } else {
                    let (s, e) = (start.parse::<u32>(), end.parse::<u32>());
                    let (Ok(s), Ok(e)) = (s, e) else { return Err(bad("bad IPv4 range".into())) };
                    table.v4.push(s, e, org);
                }
            }
        }
        table.overlaps = table.v4.seal() + table.v6.seal();
        Ok(table)
    }

    pub fn write(&self, path: &Path) -> Result<(), AsnError> {
        let mut out = Vec::with_capacity(self.v4.starts.len() * 12 + self.v6.starts.len() * 36 + self.orgs.len() * 32);
        out.extend_from_slice(MAGIC);
        put_str(&mut out, &self.source);
        put_u32(&mut out, self.orgs.len());
        for (asn, name) in &self.orgs {
            out.extend_from_slice(&asn.to_le_bytes());
            put_str(&mut out, name);
        }
        put_u32(&mut out, self.v4.starts.len());
        for i in 0..self.v4.starts.len() {
            out.extend_from_slice(&self.v4.starts[i].to_le_bytes());
            out.extend_from_slice(&self.v4.ends[i].to_le_bytes());
            out.extend_from_slice(&self.v4.orgs[i].to_le_bytes());
        }
        put_u32(&mut out, self.v6.starts.len());
        for i in 0..self.v6.starts.len() {
            out.extend_from_slice(&self.v6.starts[i].to_le_bytes());
            out.extend_from_slice(&self.v6.ends[i].to_le_bytes());
            out.extend_from_slice(&self.v6.orgs[i].to_le_bytes());
        }
        // Write then rename, so a running server never reads half a table.
        let shown = path.display().to_string();
        let partial = path.with_extension("partial");
        let io = |cause| AsnError::Io { path: shown.clone(), cause };
        let mut file = std::fs::File::create(&partial).map_err(io)?;
        file.write_all(&out).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&partial, path).map_err(io)
    }

    pub fn load(path: &Path) -> Result<AsnTable, AsnError> {
        let shown = path.display().to_string();
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|cause| AsnError::Io { path: shown.clone(), cause })?;
        parse(&bytes).ok_or(AsnError::Format(shown))
    }
}

fn parse(bytes: &[u8]) -> Option<AsnTable> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let mut table = AsnTable { source: r.string()?, ..AsnTable::default() };
    for _ in 0..r.u32()? {
        let asn = r.u32()?;
        table.orgs.push((asn, r.string()?.into()));
    }
    for _ in 0..r.u32()? {
        let (s, e, o) = (r.u32()?, r.u32()?, r.u32()?);
        table.v4.push(s, e, o);
    }
    for _ in 0..r.u32()? {
        let (s, e, o) = (r.u128()?, r.u128()?, r.u32()?);
        table.v6.push(s, e, o);
    }
    let orgs = table.orgs.len();
    let valid = r.at == bytes.len() && table.v4.orgs.iter().chain(&table.v6.orgs).all(|&o| (o as usize) < orgs);
    valid.then_some(table)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u128(&mut self) -> Option<u128> {
        self.take(16)?.try_into().ok().map(u128::from_le_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn package_version(dir: &Path) -> String {
    let version = std::fs::read_to_string(dir.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json.get("version").and_then(|v| v.as_str()).map(str::to_string));
    format!("@ip-location-db/asn {}", version.unwrap_or_else(|| "(unknown version)".into()))
}

/// One CSV record: fields split on commas, double quotes around a field, `""` inside quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_keep_quoted_commas() {
        assert_eq!(split_csv(r#"1,2,13335,"Cloudflare, Inc.""#), ["1", "2", "13335", "Cloudflare, Inc."]);
        assert_eq!(split_csv(r#"1,2,3,"A ""quoted"" name""#), ["1", "2", "3", r#"A "quoted" name"#]);
    }

    #[test]
    fn a_written_table_reads_back_and_answers_by_range() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("asn-ipv4-num.csv"),
            "16777216,16777471,13335,\"Cloudflare, Inc.\"\n134744064,134744319,15169,Google LLC\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("asn-ipv6-num.csv"),
            "42540488161975842760550356425300246528,42540488241204005274814694018844196863,6939,Hurricane Electric LLC\n",
        )
        .expect("write");
        let table = AsnTable::import(dir.path()).expect("import");
        let path = dir.path().join(FILE_NAME);
        table.write(&path).expect("write table");
        let table = AsnTable::load(&path).expect("load");
        let at = |ip: &str| table.lookup(ip.parse().expect("ip")).map(|i| i.asn);
        assert_eq!(at("1.0.0.1"), Some(13335));
        assert_eq!(at("8.8.8.8"), Some(15169));
        assert_eq!(at("::ffff:8.8.8.8"), Some(15169));
        assert_eq!(at("8.8.9.0"), None);
        assert_eq!(at("2001::1"), Some(6939));
        assert_eq!(at("2a00::1"), None);
        assert!(AsnTable::load(&dir.path().join("asn-ipv4-num.csv")).is_err());
    }

    #[test]
    fn an_enclosed_range_wins_and_the_enclosing_one_resumes_after_it() {
        let mut ranges = Ranges::<u32>::default();
        ranges.push(100, 200, 0);
        ranges.push(150, 160, 1);
        ranges.push(300, 400, 2);
        ranges.push(390, 450, 3);
        assert_eq!(ranges.seal(), 2);
        let answers: Vec<Option<u32>> = [100, 149, 150, 160, 161, 200, 201, 389, 390, 450].iter().map(|ip| ranges.find(*ip)).collect();
        assert_eq!(answers, [Some(0), Some(0), Some(1), Some(1), Some(0), Some(0), None, Some(2), Some(3), Some(3)]);
    }
}
