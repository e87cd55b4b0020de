//! kproxy runtime.
