//! A minimal ustar writer for the data export: regular files only, no compression. Written here
//! rather than pulled in, since it is 50 lines and the archive has no other needs.

#[derive(Debug, Default)]
pub struct Tar {
    out: Vec<u8>,
}

impl Tar {
    /// Adds a file; `mtime_ms` is its modification time. Names must be under 100 bytes.
    pub fn add(&mut self, name: &str, data: &[u8], mtime_ms: i64) {
        let mut header = [0u8; 512];
        let name = &name.as_bytes()[..name.len().min(99)];
        header[..name.len()].copy_from_slice(name);
        octal(&mut header[100..108], 0o644);
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], data.len() as u64);
        octal(&mut header[136..148], u64::try_from(mtime_ms / 1000).unwrap_or(0));
        header[148..156].fill(b' ');
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        let sum: u64 = header.iter().map(|b| u64::from(*b)).sum();
        octal(&mut header[148..155], sum);
        header[155] = b' ';
        self.out.extend_from_slice(&header);
        self.out.extend_from_slice(data);
        self.out.resize(self.out.len().div_ceil(512) * 512, 0);
    }

    /// The archive, closed with its two empty blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 1024, 0);
        self.out
    }
}

/// Writes `value` as zero-padded octal digits filling the field but its last byte (NUL).
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::Tar;

    #[test]
    fn the_archive_is_read_by_tar() {
        let mut tar = Tar::default();
        tar.add("export/data.json", b"{\"a\":1}", 1_790_000_000_000);
        tar.add("export/t.csv", b"a,b\r\n1,2\r\n", 1_790_000_000_000);
        let bytes = tar.finish();
        assert_eq!(bytes.len() % 512, 0);
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("x.tar");
        std::fs::write(&file, &bytes).expect("write");
        let listing = std::process::Command::new("tar").arg("-tvf").arg(&file).output().expect("tar");
        assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
        let text = String::from_utf8_lossy(&listing.stdout);
        assert!(text.contains("export/data.json") && text.contains("export/t.csv"), "{text}");
        let out = std::process::Command::new("tar").arg("-xOf").arg(&file).arg("export/t.csv").output().expect("tar");
        assert_eq!(out.stdout, b"a,b\r\n1,2\r\n");
    }
}
