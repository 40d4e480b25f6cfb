use clap::Parser;

/// mimalloc keeps freed pages for the next allocation: the audit's
/// readers allocate and free a slice's columns thousands of times, and the
/// system allocator returned each to the kernel, to be faulted in and
/// zeroed again (docs/benchmarks.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    // A panic names where it happened, not what it was about: its message
    // may quote input (a decoder's), and logs carry no record content.
    // VIGIE_PANIC_DETAILS=1 shows the message, for debugging on test data.
    let details = std::env::var_os("VIGIE_PANIC_DETAILS").is_some_and(|v| v == "1");
    std::panic::set_hook(Box::new(move |info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        if details {
            eprintln!("vigie: internal error at {at}: {info}");
        } else {
            eprintln!("vigie: internal error at {at} (VIGIE_PANIC_DETAILS=1 shows its message)");
        }
    }));
    let cli = vigie::cli::Cli::parse();
    if matches!(cli.command, vigie::cli::Command::Ingest(_))
        && std::env::var_os("POLARS_MAX_THREADS").is_none()
    {
        // The service's analysis shares the machine with the consumer:
        // Polars gets two threads. Polars reads this once, when its pool
        // starts; it is set here, in the binary's entry, before any thread
        // of vigie's exists, and never in library code.
        std::env::set_var("POLARS_MAX_THREADS", "2");
    }
    let outcome = vigie::cli::run(cli);
    if vigie::audit::interrupt::pending() {
        // A signal is being handled: the watcher removes the spill and
        // exits 130; an error now is its consequence (the spill was pulled
        // from under the run), and a run that just finished must not exit
        // before the spill is gone.
        loop {
            std::thread::park();
        }
    }
    if let Err(f) = outcome {
        eprintln!("vigie: {f}");
        std::process::exit(f.code());
    }
}
