//! `wharf bench`: the engine's benchmarks in `docs/BENCHMARKS.md` (the destination's is
//! `benches/destination.sh`, driven by wrk).

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Engine delivery throughput and ingest-to-delivery latency against a local sink.
    Engine(crate::bench_engine::EngineBenchArgs),
    /// Engine -> destination -> application at a steady rate for a long time: throughput,
    /// latency and both servers' memory over time; fails if an acknowledged message is lost.
    Soak(crate::bench_soak::SoakArgs),
}

pub async fn run(command: BenchCommand) -> std::process::ExitCode {
    let result = match command {
        BenchCommand::Engine(args) => crate::bench_engine::run(args).await,
        BenchCommand::Soak(args) => crate::bench_soak::run(args).await,
    };
    match result {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
