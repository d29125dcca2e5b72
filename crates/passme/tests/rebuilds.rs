//! The binary must not rebuild when nothing changed: cargo reruns a build script whenever a path it
//! watches is missing, so every watched path has to exist.

#[test]
fn the_build_script_watches_only_paths_that_exist() {
    // Cargo keeps a build script's output beside its OUT_DIR.
    let output = std::path::Path::new(env!("OUT_DIR")).join("../output");
    let text = std::fs::read_to_string(&output).unwrap_or_else(|e| panic!("{}: {e}", output.display()));
    let watched: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("cargo:rerun-if-changed=")).collect();
    assert!(watched.len() > 10, "the script watches the crates' sources: {watched:?}");
    let missing: Vec<&&str> = watched.iter().filter(|p| !std::path::Path::new(p).exists()).collect();
    assert!(missing.is_empty(), "missing paths make every cargo call rebuild passme: {missing:?}");
}
