//! Pure planning and rendering: [`plan`] works out which listeners, and which elements of
//! the redirect table, a `ProxyState` needs; [`rules`] writes the table (its fixed part and
//! its elements, with listener ports filled in) and the scripts that load or patch it.
//! Nothing here does I/O.

pub mod plan;
pub mod rules;
