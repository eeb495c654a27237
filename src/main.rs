//! The `woollama` binary: everything lives in the library.
//!
//! mimalloc is the allocator: a pass-through request makes about 170
//! allocations (hyper, axum, reqwest, ours), and glibc's malloc and free
//! were 30 % of its instructions; with mimalloc the whole request costs a
//! fifth less (`bench/profile`: 145.8k → 117.2k instructions). Built
//! `no_thp`: with transparent huge pages on `madvise`, its arenas otherwise
//! take 2 MiB pages and an idle daemon 10 MiB more (25 against 15.6 MiB).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    woollama::cli::main()
}
