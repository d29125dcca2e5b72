//! Embeds which tests prove which promises: scans every crate's `src/` and `tests/` for
//! `proves!(...)` with the same scanner the policy crate uses, so `passme policy promises` works
//! from any directory.

#[path = "../policy/src/scan.rs"]
mod scan;

use std::path::{Path, PathBuf};
use std::{env, fs};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn main() {
    let crates = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("..");
    let mut files = Vec::new();
    let mut crate_dirs: Vec<PathBuf> =
        fs::read_dir(&crates).expect("crates folder").flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    crate_dirs.sort();
    for dir in &crate_dirs {
        for sub in ["src", "tests"] {
            let path = dir.join(sub);
            // A watched path that does not exist is always stale: cargo would rerun this script,
            // and rebuild the binary, on every call.
            if path.is_dir() {
                println!("cargo:rerun-if-changed={}", path.display());
                rust_files(&path, &mut files);
            }
        }
    }
    files.sort();
    let mut generated = String::from(
        "/// (file, test, promise ids) for every `proves!` in the workspace.\npub const BINDINGS: &[(&str, &str, &[&str])] = &[\n",
    );
    for file in files {
        println!("cargo:rerun-if-changed={}", file.display());
        let Ok(text) = fs::read_to_string(&file) else { continue };
        let relative = file.strip_prefix(&crates).map_or_else(|_| file.display().to_string(), |p| format!("crates/{}", p.display()));
        for binding in scan::bindings(&text) {
            let ids: Vec<String> = binding.promises.iter().map(|p| format!("{p:?}")).collect();
            generated.push_str(&format!("    ({relative:?}, {:?}, &[{}]),\n", binding.test, ids.join(", ")));
        }
    }
    generated.push_str("];\n");
    fs::write(PathBuf::from(env::var("OUT_DIR").expect("out dir")).join("proofs.rs"), generated).expect("write proofs.rs");
}
