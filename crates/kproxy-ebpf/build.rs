//! Compiles the BPF programs under `bpf/` with clang-19 into `$OUT_DIR/kproxy.o`, which the
//! crate embeds (see `src/kernel.rs`).

use std::path::PathBuf;
use std::process::Command;

/// The compiler; `KPROXY_BPF_CLANG` overrides it.
const CLANG: &str = "clang-19";
/// What to install when it is missing (Debian package names).
const PACKAGES: &str = "apt-get install clang-19 llvm-19 libbpf-dev";

fn main() {
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-env-changed=KPROXY_BPF_CLANG");
    let clang = std::env::var("KPROXY_BPF_CLANG").unwrap_or_else(|_| CLANG.to_owned());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("kproxy.o");
    if !std::path::Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        panic!("kproxy-ebpf needs libbpf's headers (/usr/include/bpf/bpf_helpers.h); install them with `{PACKAGES}`");
    }
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
        .args(["-I/usr/include/x86_64-linux-gnu", "-Ibpf", "-c", "bpf/kproxy.c", "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("{clang} failed to compile bpf/kproxy.c ({status}); see its messages above"),
        Err(e) => panic!(
            "kproxy-ebpf compiles its BPF programs with {clang}, which cannot be run ({e}); install it with `{PACKAGES}`"
        ),
    }
}
