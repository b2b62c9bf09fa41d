//! Paths of the test guest components, built from `tests/guests/` by `tests/build.rs`
//! (`TESTKIT`, `VERSIONED_V1`, `VERSIONED_V2`, `NOT_AN_OPERATOR`); what each guest
//! does is the contract in tests/guests/README.md.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The component at `path` as a rebuild of the same source with another
/// toolchain run would be: the same operator, name and version, other bytes
/// (a custom section carrying `tag` is appended, which changes nothing else).
pub fn rebuilt(path: &str, tag: &str) -> Vec<u8> {
    let name = "aileron-rebuild";
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(tag.as_bytes());
    assert!(content.len() < 128, "one-byte LEB128 size");
    let mut out = std::fs::read(path).unwrap();
    out.push(0);
    out.push(content.len() as u8);
    out.extend_from_slice(&content);
    out
}
