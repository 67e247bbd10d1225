use std::process::ExitCode;

use clap::Parser;

use bitbucket_catalogd::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    bitbucket_catalogd::init_telemetry();
    bitbucket_catalogd::run(cli).await
}
