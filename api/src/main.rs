//! The `plinth` binary: a thin shim over [`plinth_api::cli`].

// mimalloc instead of the system allocator: a command allocates a few hundred small, short-lived
// buffers (HTTP, JSON, rows), and glibc's malloc/free took ~12 % of the server's CPU in the
// 32-client profile (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    plinth_api::cli::main()
}
