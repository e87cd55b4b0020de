//! Cases from apimachinery's `validation_test.go`, `content/dns_test.go` and
//! `content/kube_test.go`, plus strings that must never reach rule text.

use super::*;

fn check(rule: NameRule, good: &[String], bad: &[String]) {
    for value in good {
        assert!(rule.accepts(value), "{rule:?} should accept {value:?}");
    }
    for value in bad {
        assert!(!rule.accepts(value), "{rule:?} should reject {value:?}");
    }
}

fn owned(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn repeat(c: &str, n: usize) -> String {
    c.repeat(n)
}

/// Strings no rule accepts: injection attempts, control characters, non-ASCII.
fn hostile() -> Vec<String> {
    owned(&[
        "a\"b",
        "x;y",
        "a\nb",
        "a\n",
        "\na",
        "a\rb",
        "a\tb",
        "a\0b",
        "{a}",
        "a}",
        "a{",
        "a b",
        "a'b",
        "a`b",
        "a\\b",
        "a$b",
        "a#b",
        "a/b/c",
        "ä",
        "aä",
        "ﬁ",
        "а",
        "a\u{200b}b",
        "a\u{7f}",
        "１",
    ])
}

#[test]
fn dns1123_label() {
    let mut good = owned(&["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "012", "1a", "1-a", "1--a--b--2"]);
    good.push(repeat("a", 63));
    let mut bad = owned(&[
        "", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1", "_", "a_", "_a", "a_b", "1_", "_1",
        "1_2", ".", "a.", ".a", "a.b", "1.", ".1", "1.2", " ", "a ", " a", "a b", "1 ", " 1", "1 2",
    ]);
    bad.push(repeat("a", 64));
    bad.extend(hostile());
    check(NameRule::Dns1123Label, &good, &bad);
}

#[test]
fn dns1123_subdomain() {
    let mut good = owned(&[
        "a",
        "ab",
        "abc",
        "a1",
        "a-1",
        "a--1--2--b",
        "0",
        "01",
        "012",
        "1a",
        "1-a",
        "1--a--b--2",
        "a.a",
        "ab.a",
        "abc.a",
        "a1.a",
        "a-1.a",
        "a--1--2--b.a",
        "a.1",
        "ab.1",
        "abc.1",
        "a1.1",
        "a-1.1",
        "a--1--2--b.1",
        "0.a",
        "01.a",
        "012.a",
        "1a.a",
        "1-a.a",
        "1--a--b--2",
        "0.1",
        "01.1",
        "012.1",
        "1a.1",
        "1-a.1",
        "1--a--b--2.1",
        "a.b.c.d.e",
        "aa.bb.cc.dd.ee",
        "1.2.3.4.5",
        "11.22.33.44.55",
    ]);
    good.push(repeat("a", 253));
    // Labels inside a subdomain have no length limit of their own, only the whole does.
    good.push(format!("{}.{}", repeat("a", 64), repeat("b", 100)));
    let mut bad = owned(&[
        "",
        "A",
        "ABC",
        "aBc",
        "A1",
        "A-1",
        "1-A",
        "-",
        "a-",
        "-a",
        "1-",
        "-1",
        "_",
        "a_",
        "_a",
        "a_b",
        "1_",
        "_1",
        "1_2",
        ".",
        "a.",
        ".a",
        "a..b",
        "1.",
        ".1",
        "1..2",
        " ",
        "a ",
        " a",
        "a b",
        "1 ",
        " 1",
        "1 2",
        "A.a",
        "aB.a",
        "ab.A",
        "A1.a",
        "a1.A",
        "A.1",
        "aB.1",
        "A1.1",
        "1A.1",
        "0.A",
        "01.A",
        "012.A",
        "1A.a",
        "1a.A",
        "A.B.C.D.E",
        "AA.BB.CC.DD.EE",
        "a.B.c.d.e",
        "aa.bB.cc.dd.ee",
        "a@b",
        "a,b",
        "a_b",
        "a;b",
        "a:b",
        "a%b",
        "a?b",
        "a$b",
    ]);
    bad.push(repeat("a", 254));
    bad.extend(hostile());
    check(NameRule::Dns1123Subdomain, &good, &bad);
}

#[test]
fn dns1035_label() {
    let mut good = owned(&["a", "ab", "abc", "a1", "a-1", "a--1--2--b"]);
    good.push(repeat("a", 63));
    let mut bad = owned(&[
        "0",
        "01",
        "012",
        "1a",
        "1-a",
        "1--a--b--2",
        "",
        "A",
        "ABC",
        "aBc",
        "A1",
        "A-1",
        "1-A",
        "-",
        "a-",
        "-a",
        "1-",
        "-1",
        "_",
        "a_",
        "_a",
        "a_b",
        "1_",
        "_1",
        "1_2",
        ".",
        "a.",
        ".a",
        "a.b",
        "1.",
        ".1",
        "1.2",
        " ",
        "a ",
        " a",
        "a b",
        "1 ",
        " 1",
        "1 2",
    ]);
    bad.push(repeat("a", 64));
    bad.extend(hostile());
    check(NameRule::Dns1035Label, &good, &bad);
}

#[test]
fn label_value() {
    let mut good = owned(&["simple", "now-with-dashes", "1-starts-with-num", "end-with-num-1", "1234", "", "A_b.C-1"]);
    good.push(repeat("a", 63));
    let mut bad = owned(&[
        "nospecialchars%^=@",
        "Tama-nui-te-rā.is.Māori.sun",
        "\\backslashes\\are\\bad",
        "-starts-with-dash",
        "ends-with-dash-",
        ".starts.with.dot",
        "ends.with.dot.",
        "a/b",
    ]);
    bad.push(repeat("a", 64));
    bad.extend(hostile());
    check(NameRule::LabelValue, &good, &bad);
}

#[test]
fn label_key() {
    let mut good = owned(&[
        "simple",
        "now-with-dashes",
        "1-starts-with-num",
        "1234",
        "simple/simple",
        "now-with-dashes/simple",
        "now-with-dashes/now-with-dashes",
        "now.with.dots/simple",
        "now-with.dashes-and.dots/simple",
        "1-num.2-num/3-num",
        "1234/5678",
        "1.2.3.4/5678",
        "Uppercase_Is_OK_123",
        "example.com/Uppercase_Is_OK_123",
        "requests.storage-foo",
        "topology.kubernetes.io/zone",
    ]);
    good.push(repeat("a", 63));
    good.push(format!("{}/{}", repeat("a", 253), repeat("b", 63)));
    let mut bad = owned(&[
        "nospecialchars%^=@",
        "cantendwithadash-",
        "-cantstartwithadash-",
        "only/one/slash",
        "Example.com/abc",
        "example_com/abc",
        "example.com/",
        "/simple",
        "",
    ]);
    bad.push(repeat("a", 64));
    bad.push(format!("{}/abc", repeat("a", 254)));
    bad.extend(hostile());
    check(NameRule::LabelKey, &good, &bad);
}

#[test]
fn rules_describe_themselves() {
    assert!(NameRule::Dns1123Label.to_string().starts_with("DNS-1123 label"));
    assert!(NameRule::Dns1123Subdomain.to_string().starts_with("DNS-1123 subdomain"));
    assert!(NameRule::Dns1035Label.to_string().starts_with("DNS-1035 label"));
    assert!(NameRule::LabelValue.to_string().starts_with("label value"));
    assert!(NameRule::LabelKey.to_string().starts_with("label key"));
}
