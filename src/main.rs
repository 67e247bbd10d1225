use std::process::ExitCode;

use clap::Parser;

use bitbucket_catalogd::Cli;

// mimalloc hands freed pages back to the system (glibc keeps them in
// per-thread arenas after loads and large listings): RSS follows the data.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = bitbucket_catalogd::init_telemetry();
    let code = bitbucket_catalogd::run(cli).await;
    telemetry.shutdown().await;
    code
}
