//! Compile-time behaviour of `#[derive(Syncable)]`: every mistake is an error spanned on the
//! offending attribute, and correct inputs compile cleanly.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
