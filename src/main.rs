use std::process::ExitCode;

use clap::Parser;

use bitbucket_catalogd::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    bitbucket_catalogd::telemetry::init();
    cli::run(cli).await
}
