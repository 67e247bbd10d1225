mod memory;

use std::process::ExitCode;

use clap::Parser;

use bitbucket_catalogd::Cli;

fn main() -> ExitCode {
    // Before any thread: the allocator's arenas are set up per thread.
    memory::configure();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: the async runtime did not start: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let cli = Cli::parse();
        let telemetry = bitbucket_catalogd::init_telemetry();
        memory::return_freed_memory();
        let code = bitbucket_catalogd::run(cli).await;
        telemetry.shutdown().await;
        code
    })
}
