use std::process::ExitCode;

use clap::Parser;

use bitbucket_catalogd::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = bitbucket_catalogd::init_telemetry();
    let code = bitbucket_catalogd::run(cli).await;
    telemetry.shutdown().await;
    code
}
