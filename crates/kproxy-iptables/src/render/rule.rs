//! Small pieces of rule text, formatted as upstream formats them.

/// `-m comment --comment TEXT`, quoted when the text has a space (upstream quotes exactly
/// those comments: `"ns1/svc1:p80 cluster IP"` but `ns1/svc1:p80`).
pub(crate) fn comment(text: &str) -> String {
    if text.contains(' ') { format!("-m comment --comment \"{text}\"") } else { format!("-m comment --comment {text}") }
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
}
