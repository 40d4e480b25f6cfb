use clap::Parser;

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let cli = vigie::cli::Cli::parse();
    if let Err(f) = vigie::cli::run(cli) {
        eprintln!("vigie: {}", f.message);
        std::process::exit(f.code);
    }
}
