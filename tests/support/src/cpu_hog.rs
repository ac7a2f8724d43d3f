//! A CPU-bound neighbour for tests and benchmarks of "the machine is busy".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A thread spinning on arithmetic at normal priority until dropped: one core's worth of a
/// CPU-bound neighbour (a build, another service) beside the server. A thread rather than a
/// process, so that it ends with its test or benchmark whatever happens; the scheduler treats
/// both alike.
#[derive(Debug)]
pub struct CpuHog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CpuHog {
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let spinning = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cpu-hog".to_owned())
            .spawn(move || {
                let mut x = 1u64;
                while !spinning.load(Ordering::Relaxed) {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005) + 1);
                    }
                }
            })
            .expect("failed to start the CPU hog thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
