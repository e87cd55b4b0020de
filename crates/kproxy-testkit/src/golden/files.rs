//! Golden files: a dataplane's set of them ([`GoldenFiles`]), comparing a rendering with
//! its file (or rewriting the file when asked), finding files no case writes any more, and
//! the diff shown on a mismatch.

use std::path::{Path, PathBuf};

/// A dataplane's golden files: `<crate_dir>/tests/golden/<case>.<extension>`, each a
/// comment header (the mode, the case and what it shows) followed by the rendering.
///
/// ```
/// use kproxy_testkit::golden::GoldenFiles;
/// const FILES: GoldenFiles = GoldenFiles { crate_dir: "/src/kproxy-x", mode: "x", extension: "nft" };
/// assert!(FILES.path("clusterip").ends_with("kproxy-x/tests/golden/clusterip.nft"));
/// let text = FILES.text("clusterip", "ClusterIP", "table ip kproxy {}\n");
/// assert_eq!(
///     text.lines().collect::<Vec<_>>(),
///     [
///         "# kproxy x golden file: clusterip",
///         "# ClusterIP",
///         "# Regenerate with `cargo xtask golden --bless`; review the diff.",
///         "table ip kproxy {}",
///     ]
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct GoldenFiles {
    /// The dataplane crate's directory: `env!("CARGO_MANIFEST_DIR")` in its tests.
    pub crate_dir: &'static str,
    /// The mode named in each file's header, e.g. `"nftables"`.
    pub mode: &'static str,
    /// The files' extension, without the dot, e.g. `"nft"`.
    pub extension: &'static str,
}

impl GoldenFiles {
    /// The directory of the files, `<crate_dir>/tests/golden`.
    pub fn dir(&self) -> PathBuf {
        Path::new(self.crate_dir).join("tests/golden")
    }

    /// The file of case `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(format!("{name}.{}", self.extension))
    }

    /// The text of case `name`'s file: a comment header naming the mode, the case and
    /// `about` (what it shows), then `body`, the rendering.
    pub fn text(&self, name: &str, about: &str, body: &str) -> String {
        format!(
            "# kproxy {} golden file: {name}\n# {about}\n# Regenerate with `cargo xtask golden --bless`; review the diff.\n{body}",
            self.mode
        )
    }

    /// Compares case `name` ([`text`](Self::text)) with its file, as [`check`] does.
    #[track_caller]
    pub fn check(&self, name: &str, about: &str, body: &str) {
        check(&self.path(name), &self.text(name, about, body));
    }

    /// Panics naming the files in [`dir`](Self::dir) that are no file of `cases`.
    #[track_caller]
    pub fn assert_none_stale(&self, cases: &[&str]) {
        let stale = stale_files(&self.dir(), self.extension, cases);
        assert!(stale.is_empty(), "golden files without a case: {stale:?}");
    }

    /// Every golden file, sorted, for a test that loads them into a kernel. Panics under
    /// `KPROXY_BLESS=1` (that run rewrites the files: load them in a comparing run) and
    /// when there are none.
    #[track_caller]
    pub fn to_load(&self) -> Vec<PathBuf> {
        assert!(!blessing(), "KPROXY_BLESS=1 rewrites the golden files: load them in a comparing run");
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir())
            .expect("golden directory")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == self.extension))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no golden files; run `cargo xtask golden --bless`");
        files
    }
}

/// Whether this run rewrites golden files: `KPROXY_BLESS=1`.
fn blessing() -> bool {
    std::env::var("KPROXY_BLESS").is_ok_and(|v| v == "1")
}

/// Compares `actual` with the golden file at `path`, panicking with a unified diff when
/// they differ. Under `KPROXY_BLESS=1` (what `cargo xtask golden --bless` sets) it writes
/// `actual` to the file instead; review the diff in review.
#[track_caller]
pub fn check(path: &Path, actual: &str) {
    if blessing() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("golden directory");
        }
        std::fs::write(path, actual).expect("golden file written");
        println!("blessed {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask golden --bless` to create it", path.display()));
    if expected != actual {
        let diff = unified_diff(&expected, actual, &format!("{} (golden)", path.display()), "rendered");
        panic!(
            "rendering differs from {}:\n{diff}\nIf the change is intended, run `cargo xtask golden --bless` and review the diff.",
            path.display()
        );
    }
}

/// The files in `dir` that are not `<case>.<extension>` for one of `cases` (none when
/// `dir` does not exist).
pub fn stale_files(dir: &Path, extension: &str, cases: &[&str]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|f| !cases.iter().any(|c| format!("{c}.{extension}") == *f))
        .collect()
}

/// A line diff of `expected` and `actual` in unified style (3 lines of context).
pub fn unified_diff(expected: &str, actual: &str, expected_name: &str, actual_name: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // Longest common subsequence table, from the ends.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    // Edit script: (' ' | '-' | '+', line index in a, line index in b, text).
    let mut ops: Vec<(char, usize, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i, j, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i, j, a[i]));
            i += 1;
        } else {
            ops.push(('+', i, j, b[j]));
            j += 1;
        }
    }
    hunks(&ops, &format!("--- {expected_name}\n+++ {actual_name}\n"))
}

/// The hunks of an edit script, after `header`.
fn hunks(ops: &[(char, usize, usize, &str)], header: &str) -> String {
    const CONTEXT: usize = 3;
    let mut out = header.to_owned();
    let changed: Vec<usize> = ops.iter().enumerate().filter(|(_, op)| op.0 != ' ').map(|(k, _)| k).collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let old_len = hunk.iter().filter(|op| op.0 != '+').count();
        let new_len = hunk.iter().filter(|op| op.0 != '-').count();
        out.push_str(&format!("@@ -{},{old_len} +{},{new_len} @@\n", hunk[0].1 + 1, hunk[0].2 + 1));
        for (tag, _, _, text) in hunk {
            out.push_str(&format!("{tag}{text}\n"));
        }
    }
    out
}

/// The tests of a dataplane's golden cases: `golden_tests!(FILES, check; clusterip, nodeport)`
/// writes one `#[test]` per case, `fn clusterip() { check("clusterip", cases::clusterip()) }`
/// and so on, and `no_stale_golden_files`, which fails when `FILES` (a [`GoldenFiles`])
/// holds a file no case writes any more. `CASES` is every case name.
#[macro_export]
macro_rules! golden_tests {
    ($files:expr, $check:path; $($name:ident),* $(,)?) => {
        /// Every case name.
        const CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                $check(stringify!($name), cases::$name());
            }
        )*
        /// Every golden file belongs to a case.
        #[test]
        fn no_stale_golden_files() {
            $files.assert_none_stale(CASES);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatches_print_a_unified_diff() {
        let expected = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let actual = "a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\n";
        assert_eq!(
            unified_diff(expected, actual, "golden", "rendered"),
            "--- golden\n+++ rendered\n@@ -1,5 +1,5 @@\n a\n-b\n+B\n c\n d\n e\n@@ -8,3 +8,4 @@\n h\n i\n j\n+k\n"
        );
        assert_eq!(unified_diff(expected, expected, "golden", "rendered"), "--- golden\n+++ rendered\n");
    }

    #[test]
    fn stale_files_are_those_of_no_case() {
        let dir = std::env::temp_dir().join(format!("kproxy-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        for file in ["a.nft", "b.nft", "a.iptables"] {
            std::fs::write(dir.join(file), "").expect("file");
        }
        let mut stale = stale_files(&dir, "nft", &["a"]);
        stale.sort();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(stale, ["a.iptables", "b.nft"]);
        assert!(stale_files(&dir, "nft", &["a"]).is_empty(), "a directory that is gone holds nothing stale");
    }
}
