//! kproxy-core's README shows this crate as it is: its dataplane and its conformance test.

#[test]
fn the_core_readme_shows_this_crate_verbatim() {
    let readme = include_str!("../../../crates/kproxy-core/README.md");
    let files =
        [("src/lib.rs", include_str!("../src/lib.rs")), ("tests/conformance.rs", include_str!("conformance.rs"))];
    for (file, text) in files {
        assert!(
            readme.contains(text),
            "crates/kproxy-core/README.md must show examples/counting-dataplane/{file} verbatim"
        );
    }
}
