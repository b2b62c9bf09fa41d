//! The SDKs' test hosts refuse what the real host refuses: the Rust SDK's
//! `allow_hosts` check against the sandbox's, over one table.

/// (patterns, host, port); the expected answer is whatever the sandbox says,
/// and the table covers each rule both ways.
const CASES: &[(&[&str], &str, u16)] = &[
    (&["example.com"], "example.com", 443),
    (&["example.com"], "EXAMPLE.com.", 8080),
    (&["example.com"], "api.example.com", 443),
    (&["example.com"], "badexample.com", 443),
    (&["*.example.com"], "a.example.com", 443),
    (&["*.example.com"], "a.b.example.com", 80),
    (&["*.example.com"], "example.com", 443),
    (&["*.example.com"], "aexample.com", 443),
    (&["*.example.com"], ".example.com", 443),
    (&["api.example.com:8443"], "api.example.com", 8443),
    (&["api.example.com:8443"], "api.example.com", 443),
    (&["*.internal.test:80"], "x.internal.test", 80),
    (&["*.internal.test:80"], "x.internal.test", 81),
    (&["[::1]:8080"], "::1", 8080),
    (&["[::1]:8080"], "[::1]", 80),
    (&["::1"], "::1", 80),
    (&["127.0.0.1"], "127.0.0.1", 9000),
    (&[], "example.com", 443),
    (&["example.com:http", "*", "a/b", ""], "example.com", 80),
    (&["u@example.com"], "example.com", 80),
    (&["example.com:99999"], "example.com", 80),
];

#[test]
fn the_sdk_test_host_and_the_sandbox_agree_on_allow_hosts() {
    let mut allowed = 0;
    for (patterns, host, port) in CASES {
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        let real = aileron_sandbox::host_allowed(&patterns, host, *port);
        let test = aileron_sdk::testing::host_allowed(&patterns, host, *port);
        assert_eq!(real, test, "{patterns:?} {host}:{port}");
        allowed += usize::from(real);
    }
    // Both answers occur, so agreeing is not agreeing on "no".
    assert!(allowed > 5 && allowed < CASES.len() - 5, "{allowed}");
}
