//! Small pieces of rule text, formatted as upstream formats them.

use kproxy_netfilter::iptables_comment;

/// `-m comment --comment TEXT`: every comment goes through [`iptables_comment`], which
/// quotes as upstream does for ordinary text (`"ns1/svc1:p80 cluster IP"` but
/// `ns1/svc1:p80`) and makes any other text one clean argument.
pub(crate) fn comment(text: &str) -> String {
    format!("-m comment --comment {}", iptables_comment(text))
}

/// The probability of the rule that picks the first of `n` remaining endpoints, as
/// upstream's `computeProbability` formats it (`%0.10f` of 1/n).
pub fn probability(n: usize) -> String {
    // Endpoint counts are far below 2^52: the conversion is exact.
    #[expect(clippy::cast_precision_loss, reason = "endpoint counts are small")]
    let n = n as f64;
    format!("{:.10}", 1.0 / n)
}

/// `-m tcp -p tcp`: the protocol match as upstream writes it.
pub(crate) fn proto(protocol: &str) -> String {
    format!("-m {protocol} -p {protocol}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_are_formatted_like_upstream() {
        assert_eq!(probability(2), "0.5000000000");
        assert_eq!(probability(3), "0.3333333333");
        assert_eq!(probability(7), "0.1428571429");
        assert_eq!(probability(1000), "0.0010000000");
    }

    #[test]
    fn comments_are_quoted_only_when_needed() {
        assert_eq!(comment("ns1/svc1:p80"), "-m comment --comment ns1/svc1:p80");
        assert_eq!(comment("ns1/svc1:p80 cluster IP"), "-m comment --comment \"ns1/svc1:p80 cluster IP\"");
    }

    #[test]
    fn hostile_comments_stay_one_argument_on_one_line() {
        let c = comment("ns/x\" -j ACCEPT\n-A INPUT -s 198.18.0.3/32 -j ACCEPT cluster IP");
        assert_eq!(c, "-m comment --comment \"ns/x\\\" -j ACCEPT?-A INPUT -s 198.18.0.3/32 -j ACCEPT cluster IP\"");
        assert_eq!(comment("a;b"), "-m comment --comment \"a;b\"");
    }
}
