use std::collections::BTreeSet;

use super::*;

/// Texts a Service, namespace or port name could carry if nothing validated it.
fn hostile() -> Vec<String> {
    let mut texts: Vec<String> = [
        "",
        "ns1",
        "svc\"",
        "svc\" -j ACCEPT\n-A INPUT -s 198.18.0.3/32 -j ACCEPT\n#",
        "a;b",
        "; flush ruleset ;",
        "{ }",
        "x}\nadd rule ip filter input accept\n",
        "tab\there",
        "cr\rlf\n",
        "nul\0byte",
        "back\\slash\\",
        "\\\"",
        "quote'single",
        "sp ace",
        "ünïcödé☃",
        "\u{202e}rtl",
        "\u{9b}c1",
        "a/b:c",
        "__",
        "-A",
        "tcp",
        "@set",
        "$var",
        "*",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    texts.push("a".repeat(253));
    texts.push("b".repeat(300));
    texts.push("é".repeat(300));
    texts.push(format!("{}\"{}", "c".repeat(200), "\n".repeat(100)));
    texts
}

/// Whether nft reads `name` as one unquoted identifier.
fn is_nft_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.')
        && chars.all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
}

/// iptables' `add_param_to_argv`: how `iptables-restore` splits one line into arguments.
fn restore_argv(line: &str) -> Vec<String> {
    let (mut args, mut param, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    let mut has_param = false;
    for c in line.chars() {
        if quoted {
            if escaped {
                param.push(c);
                escaped = false;
                continue;
            }
            match c {
                '\\' => escaped = true,
                '"' => {
                    quoted = false;
                    args.push(std::mem::take(&mut param));
                    has_param = false;
                }
                _ => param.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ' ' | '\t' | '\n' => {
                if has_param {
                    args.push(std::mem::take(&mut param));
                    has_param = false;
                }
            }
            _ => {
                param.push(c);
                has_param = true;
            }
        }
    }
    if has_param {
        args.push(param);
    }
    args
}

#[test]
fn ordinary_name_parts_are_kept() {
    for text in ["ns1", "kube-system", "svc-1", "p80", "dns-tcp", "", "a.b", "UPPER"] {
        assert_eq!(nft_name_part(text), text);
    }
}

#[test]
fn unsafe_name_parts_are_hashed_without_separators() {
    for text in hostile().iter().filter(|t| !t.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))) {
        let part = nft_name_part(text);
        assert!(part.contains('_'), "{text:?} → {part}");
        assert!(!part.contains('/'), "{text:?} → {part}");
        assert!(part.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)), "{text:?} → {part}");
        assert!(part.len() <= 32 + 1 + 16, "{text:?} → {part}");
    }
}

#[test]
fn name_parts_of_different_texts_differ() {
    let mut texts = hostile();
    texts.extend(["a_b", "a;b", "a:b", "ab", "a b"].map(str::to_owned));
    let parts: BTreeSet<String> = texts.iter().map(|t| nft_name_part(t).into_owned()).collect();
    let distinct: BTreeSet<&String> = texts.iter().collect();
    assert_eq!(parts.len(), distinct.len());
}

#[test]
fn ordinary_names_are_kept() {
    for name in ["affinity-cluster-ns5/sticky/tcp/p80", "endpoint-cluster-ns11/sticky6/udp/dns__fd00-10--1-23/5353"] {
        assert_eq!(nft_name(name), name);
    }
    let longest = format!("x{}", "y".repeat(254));
    assert_eq!(nft_name(&longest), longest);
}

#[test]
fn every_name_is_an_identifier_that_fits() {
    for text in hostile() {
        let name = nft_name(&format!("affinity-{text}"));
        assert!(is_nft_identifier(&name), "{text:?} → {name}");
        assert!(name.len() <= NFT_NAME_MAX, "{text:?} → {} bytes", name.len());
        let bare = nft_name(&text);
        assert!(is_nft_identifier(&bare), "{text:?} → {bare}");
        assert!(bare.len() <= NFT_NAME_MAX);
    }
}

#[test]
fn long_names_keep_their_head_and_stay_apart() {
    let a = format!("chain-{}", "a".repeat(300));
    let b = format!("{a}b");
    let (na, nb) = (nft_name(&a), nft_name(&b));
    assert_eq!(na.len(), NFT_NAME_MAX);
    assert!(na.starts_with("chain-aaaa"));
    assert_ne!(na, nb);
    assert_eq!(na, nft_name(&a), "stable");
}

#[test]
fn names_that_differ_only_in_unsafe_characters_stay_apart() {
    assert_ne!(nft_name("x-a;b"), nft_name("x-a:b"));
    assert_ne!(nft_name("x-a;b"), nft_name("x-a_b"));
}

#[test]
fn nft_comments_are_one_bounded_string() {
    for text in hostile() {
        let quoted = nft_comment(&text);
        let body = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).expect("quoted");
        assert!(!body.contains(['"', '\\']), "{text:?} → {quoted}");
        assert!(body.chars().all(|c| (' '..='~').contains(&c)), "{text:?} → {quoted}");
        assert!(body.len() <= NFT_COMMENT_MAX, "{text:?} → {} bytes", body.len());
    }
    assert_eq!(nft_comment("ns1/svc1:p80"), "\"ns1/svc1:p80\"");
    assert_eq!(nft_comment("a\"b\nc"), "\"a?b?c\"");
}

#[test]
fn iptables_comments_match_upstream_for_ordinary_text() {
    assert_eq!(iptables_comment("ns1/svc1:p80"), "ns1/svc1:p80");
    assert_eq!(iptables_comment("ns1/svc1:p80 cluster IP"), "\"ns1/svc1:p80 cluster IP\"");
    assert_eq!(iptables_comment("ns1/svc1:p80 -> 10.180.0.1:80"), "\"ns1/svc1:p80 -> 10.180.0.1:80\"");
    assert_eq!(
        iptables_comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain"),
        "\"kubernetes service nodeports; NOTE: this must be the last rule in this chain\""
    );
}

#[test]
fn iptables_comments_are_one_argument_of_the_cleaned_text() {
    for text in hostile() {
        let arg = iptables_comment(&text);
        assert!(!arg.contains(['\n', '\r', '\0']), "{text:?} → {arg}");
        let line = format!("-A KUBE-SERVICES -m comment --comment {arg} -j KUBE-MARK-MASQ");
        let argv = restore_argv(&line);
        let expected: String = text.chars().map(|c| if (' '..='~').contains(&c) { c } else { '?' }).take(255).collect();
        assert_eq!(argv.len(), 8, "{text:?} → {line}");
        assert_eq!(argv[5], expected, "{text:?} → {line}");
        assert!(argv[5].len() <= IPTABLES_COMMENT_MAX);
        assert_eq!(argv[6..], ["-j", "KUBE-MARK-MASQ"]);
    }
}

#[test]
fn iptables_comments_escape_quotes_and_backslashes() {
    assert_eq!(iptables_comment("a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_eq!(iptables_comment("x\n-A INPUT"), "\"x?-A INPUT\"");
    assert_eq!(iptables_comment(""), "\"\"");
}
