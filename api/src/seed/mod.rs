//! `plinth seed`'s generator: a realistic platform drawn from a seed ([`blueprint`]), written
//! through the real command path ([`run`]). The CLI around it is `cli/seed.rs`.

pub(crate) mod blueprint;
mod names;
pub(crate) mod run;
