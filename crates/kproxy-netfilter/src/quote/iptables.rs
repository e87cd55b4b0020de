//! `iptables-restore` input: the argument of `-m comment --comment`.
//!
//! `iptables-restore` reads one rule per line and splits it into arguments itself
//! (`add_param_to_argv` in iptables' `xshared.c`): blanks separate arguments outside
//! double quotes; inside them a backslash takes the next character literally and `"`
//! closes. A newline always ends the rule, quoted or not. `xt_comment` keeps at most
//! 255 bytes (`XT_MAX_COMMENT_LEN`, 256 with its NUL); both backends cut longer ones.

use super::printable_ascii;

/// The longest comment `xt_comment` keeps.
pub const IPTABLES_COMMENT_MAX: usize = 255;

/// Whether `c` may appear in a comment written bare: what Service port names and
/// addresses are made of (`ns/svc:port`, `10.0.0.1:80`).
fn bare_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | ':' | '.' | '_' | '-')
}

/// `text` as the one argument of `--comment` that `iptables-restore` reads back as the
/// (cleaned) text.
///
/// Everything but printable ASCII (newlines, tabs, other control characters, non-ASCII)
/// becomes `?`, and the text is cut to [`IPTABLES_COMMENT_MAX`] bytes. The result is
/// written bare when it is made of `[A-Za-z0-9/:._-]` only, as upstream writes
/// `--comment ns1/svc1:p80`; otherwise in double quotes, with `"` and `\` escaped by a
/// backslash, as upstream writes `--comment "ns1/svc1:p80 cluster IP"` (so ordinary names
/// render exactly as upstream's).
pub fn iptables_comment(text: &str) -> String {
    let text = printable_ascii(text, IPTABLES_COMMENT_MAX);
    if !text.is_empty() && text.chars().all(bare_char) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
