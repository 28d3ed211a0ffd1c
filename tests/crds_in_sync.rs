//! `crds/` is generated from the Rust types; this fails when the committed files drift.
//! Regenerate with `make crds`.

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut stale = Vec::new();
    for (file, crd) in roster::crds::all() {
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if committed != roster::crds::to_yaml(&crd) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "crds/{stale:?} differ from the Rust types: run `make crds` and commit"
    );
}
