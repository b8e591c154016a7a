//! The `kubectl-lite` binary: parse the command line, run it, print any error as kubectl does.

use clap::Parser as _;
use kubectl_lite::{Cli, errors, printer};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and --version print and succeed; bad flags and arguments exit 1, as in kubectl.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            std::process::exit(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            printer::stderr(&format!("error: failed to start the runtime: {e}\n"));
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(kubectl_lite::run(cli)) {
        printer::stderr(&errors::render(&e));
        std::process::exit(e.exit_code());
    }
}
