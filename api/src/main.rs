//! The `plinth` binary: a thin shim over [`plinth_api::cli`].

// mimalloc instead of the system allocator: a command allocates a few hundred small, short-lived
// buffers (HTTP, JSON, rows), and glibc's malloc/free took ~12 % of the server's CPU in the
// 32-client profile (docs/performance.md). Its `override` feature also takes C's malloc/free,
// which librdkafka calls for every message and header: allocated on the relay's task, freed on
// the producer's polling thread, they cost a quarter of the relay's CPU under glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    plinth_api::cli::main()
}
