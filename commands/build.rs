//! Rebuild when a migration is added: `refinery::embed_migrations!` reads `../migrations` at
//! compile time, and cargo does not notice new files there on its own.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
