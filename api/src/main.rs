//! The `plinth` binary: a thin shim over [`plinth_api::cli`].

fn main() -> anyhow::Result<()> {
    plinth_api::cli::main()
}
