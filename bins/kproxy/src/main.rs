//! The kproxy daemon.

fn main() {
    println!("kproxy: the daemon is not yet available");
}
